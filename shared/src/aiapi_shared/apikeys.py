"""The API key format: ``sk-cc-`` + 30 random base62 characters + a 6-character base62 CRC32.

Shared because two services need it: accounts mints keys, the edge refuses a malformed or
mistyped key before it looks anything up. The layout follows GitHub's token format for the same
reasons: a fixed prefix lets secret scanners recognise a leaked key, 30 base62 characters carry
~178 bits of randomness, and the checksum of the random part catches a typo offline.

A key is never stored: services keep :func:`key_hash` (SHA-256 hex of the whole key), which is
also the key of the key's record in the ``aiapi_keys`` KV bucket.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "sk-cc-"
BODY_LENGTH = 30
CHECKSUM_LENGTH = 6
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_LENGTH = len(PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH

_SHAPE = re.compile(rf"^{re.escape(PREFIX)}[0-9A-Za-z]{{{BODY_LENGTH + CHECKSUM_LENGTH}}}$")


def _base62(number: int, width: int) -> str:
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of the random part (62**6 > 2**32, so it always fits)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key() -> str:
    """A new key from the operating system's CSPRNG."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return f"{PREFIX}{body}{checksum(body)}"


def is_well_formed(key: str) -> bool:
    """True when ``key`` has the prefix, the length, the alphabet and a matching checksum."""
    if len(key) != KEY_LENGTH or not _SHAPE.match(key):
        return False
    body = key[len(PREFIX) : len(PREFIX) + BODY_LENGTH]
    return secrets.compare_digest(key[-CHECKSUM_LENGTH:], checksum(body))


def key_hash(key: str) -> str:
    """SHA-256 hex of the whole key: what is stored, and the key of its KV record."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    """What a listing may show: the prefix and the last four characters (part of the checksum,
    so the hint gives away nothing of the random part)."""
    return f"{PREFIX}...{key[-4:]}"
