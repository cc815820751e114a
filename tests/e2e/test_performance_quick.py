"""bench/performance.py --quick in CI: the benchmark command runs end to end and the books balance.

The run is the script itself, as an operator runs it (the whole product, the fake upstream, wrk);
this test reads what it printed. No figure is checked against a number: the machine's speed is
not under test, only that every row of the table was measured and every request billed once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "performance.py"
ROWS = (
    "added p50, JSON, c=1",
    "added first byte, stream, c=1",
    "added first byte, stream, c=16",
    "requests/s, JSON, c=64",
    "requests/s, stream, c=64",
    "CPU per JSON request, c=64",
    "CPU per 26-event stream, c=64",
    "50 ms upstream, c=64: share, JSON / stream",
    "50 ms upstream, c=1: added p50 / first byte",
    "50 ms upstream, c=1: CPU per request",
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_quick_benchmark_prints_the_table_and_balanced_books() -> None:
    if shutil.which("node") is None and not Path(sys.executable).with_name("node").exists():
        pytest.skip("the benchmark's fake upstream needs Node.js")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    context = done.stdout[-4000:] + done.stderr[-4000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for row in ROWS:
        cells = next((line.split(" | ") for line in table if line.startswith(f"| {row} |")), None)
        assert cells is not None, f"row {row!r} missing\n{context}"
        assert "nan" not in cells[2], f"row {row!r} was not measured\n{context}"
    assert "idle CPU of the product:" in done.stdout, context
    assert "long streams" in done.stdout, context
    assert "BALANCED" in done.stdout and done.returncode == 0, context
