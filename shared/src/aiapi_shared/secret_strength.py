"""Is an operator-chosen secret (the operator API token) strong enough to guard money? Pure.

A token an operator typed or copied from an example is the usual weak point: ``changeme``, the
example file's ``change-me-to-a-long-random-string``, ``admin``, ``secret``. Refused: fewer than
:data:`MIN_LENGTH` characters, a known placeholder word anywhere in it, or too little variety to
be random (few distinct characters, or a low Shannon estimate over its characters). A generated
token (``openssl rand -hex 32``, ``python -c 'import secrets; print(secrets.token_urlsafe(32))'``)
passes easily.
"""

from __future__ import annotations

import math
import re
from collections import Counter

MIN_LENGTH = 24
MIN_DISTINCT = 8
MIN_BITS = 64.0
# Compared with the token lowercased and stripped of everything but letters and digits.
_PLACEHOLDERS = (
    "changeme",
    "changethis",
    "replaceme",
    "placeholder",
    "yourtoken",
    "yoursecret",
    "example",
    "password",
    "letmein",
    "xxxxxx",
    "secretsecret",
    "adminadmin",
    "tokentoken",
)
_WHOLE_WORDS = frozenset({"admin", "secret", "token", "test", "default", "operator"})


def weakness(token: str) -> str | None:
    """Why ``token`` is too weak (a sentence that never repeats it), or None when it is fine."""
    value = token.strip()
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    if folded in _WHOLE_WORDS or any(word in folded for word in _PLACEHOLDERS):
        return "it is a well-known placeholder"
    if len(value) < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if len(counts) < MIN_DISTINCT or bits < MIN_BITS:
        return "it is too regular to be random"
    return None
