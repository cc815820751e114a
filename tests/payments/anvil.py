"""anvil for the payments tests: :mod:`aiapi_testkit.anvil` (bench/chaos.py drives it too)."""

from __future__ import annotations

from aiapi_testkit.anvil import FINALITY_LAG, anvil_binary, running_anvil, running_anvils

__all__ = ["FINALITY_LAG", "anvil_binary", "running_anvil", "running_anvils"]
