"""What the cyclic garbage collector does in every process of a benchmark run.

Put this directory first on ``PYTHONPATH`` and set ``AIAPI_GC_PROBE``; every Python process
started with that environment (the product's services, their edge workers) imports it at start:

* ``AIAPI_GC_PROBE=stats``: times each collection (``gc.callbacks``) and writes, every 5 s,
  ``gc-stats.<pid>`` into ``AIAPI_GC_PROBE_DIR`` (default: the temporary directory): the process's command,
  its tracked and frozen objects, and per generation the collections and their milliseconds
  since the process started;
* ``AIAPI_GC_PROBE=garbage``: ``AIAPI_GC_PROBE_AT`` s (default 30) after start, keeps for 2 s
  what the collector frees (``gc.DEBUG_SAVEALL``) and writes the freed objects' types, most
  frequent first, to ``gc-garbage.<pid>``.

docs/performance.md, "The garbage collector", has the commands and what they found.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

_MODE = os.environ.get("AIAPI_GC_PROBE", "")
_OUT = Path(os.environ.get("AIAPI_GC_PROBE_DIR") or tempfile.gettempdir())


def _name() -> str:
    """The process's command line, read when written: at start-up ``-m`` has no module yet."""
    return " ".join(sys.argv)[-60:]


def _stats() -> None:
    spent = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            figures = spent[info["generation"]]
            figures[0] += 1
            figures[1] += time.perf_counter() - began[0]

    gc.callbacks.append(timed)

    def write() -> None:
        while True:
            time.sleep(5)
            gens = " ".join(f"gen{g}: n={n} ms={s * 1e3:.1f}" for g, (n, s) in spent.items())
            line = (
                f"{_name()} objects={len(gc.get_objects())} frozen={gc.get_freeze_count()} {gens}"
            )
            (_OUT / f"gc-stats.{os.getpid()}").write_text(line + "\n")

    threading.Thread(target=write, daemon=True).start()


def _garbage() -> None:
    def probe() -> None:
        time.sleep(float(os.environ.get("AIAPI_GC_PROBE_AT", "30")))
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        time.sleep(2)
        gc.collect()
        gc.set_debug(0)
        kinds = Counter(type(o).__qualname__ for o in gc.garbage)
        total = len(gc.garbage)
        gc.garbage.clear()
        lines = [f"{_name()} freed={total}"] + [f"{n:8d} {k}" for k, n in kinds.most_common(40)]
        (_OUT / f"gc-garbage.{os.getpid()}").write_text("\n".join(lines) + "\n")

    threading.Thread(target=probe, daemon=True).start()


if _MODE == "stats":
    _stats()
elif _MODE == "garbage":
    _garbage()
