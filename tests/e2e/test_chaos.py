"""The short chaos run in CI: bench/chaos.py with a fixed seed for two minutes of load and faults.

The run is the script itself, as an operator runs it (its own processes, PostgreSQL and NATS);
this test only reads its verdict. Nothing here depends on how fast the machine is: the drain is
bounded generously and the verdict is about the books, not about time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"
SEED = 14
# Two minutes of faults (one every 7 s on average) at 8 requests/s from 16 accounts; a drain
# bounded at 7 minutes, for a loaded 2-core machine.
ARGS = ["--seed", str(SEED), "--duration", "120", "--accounts", "16", "--rate", "8"]
ARGS += ["--every", "7", "--drain", "420"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_minutes_of_faults_end_with_exact_books(tmp_path: Path) -> None:
    out = tmp_path / "verdict.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS, "--verdict-json", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert out.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    verdict = json.loads(out.read_text())
    context = verdict["line"] + "\n" + "\n".join(verdict["log"])
    # Load and faults really happened: requests served and settled, faults of several kinds.
    assert verdict["served"] > 100, context
    assert verdict["billed"] >= verdict["served"] - verdict["edge_died"], context
    assert len([k for k in verdict["faults"] if not k.endswith("_failed")]) >= 4, context
    # The books: every served request settled once at its price, nothing left held, audit clean.
    assert verdict["lost"] == [], context
    assert verdict["double"] == [], context
    assert verdict["wrong"] == [], context
    assert (verdict["open_holds"], verdict["live_leases"], verdict["held"]) == (0, 0, 0), context
    assert verdict["audit"] == [], context
    assert verdict["ok"] and done.returncode == 0, context
