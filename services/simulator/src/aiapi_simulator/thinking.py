"""Thinking blocks: the deterministic thinking text and the signature the simulator issues."""

from __future__ import annotations

import base64
import hashlib


def sign_thinking(thinking: str) -> str:
    """The signature of a thinking text: base64 (standard, padded) of SHA-256 of its UTF-8."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def default_thinking(prompt: str) -> str:
    """The thinking text used when no `[[thinking: ...]]` directive chose one."""
    return f"The user wrote: {prompt[:200]}. I will answer with the simulator's reply."
