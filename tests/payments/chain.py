"""The anvil driver of the payments tests: :mod:`aiapi_testkit.chain` (bench/chaos.py uses it
too)."""

from __future__ import annotations

from aiapi_testkit.chain import Chain, drivers, token_artifacts

__all__ = ["Chain", "drivers", "token_artifacts"]
