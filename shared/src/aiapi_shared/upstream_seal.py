"""The custody of upstream keys added at runtime: sealed to the edges' public key (pure).

An operator's upstream key is sealed (X25519 + XSalsa20-Poly1305, libsodium's sealed box) with
the pool's public key the moment accounts receives it; only the ciphertext is stored in
PostgreSQL and published in the ``aiapi_upstream_keys`` bucket. The private key is given to the
edges alone (``AIAPI_UPSTREAM_SEAL_PRIVATE_KEY``, a secret file), so neither accounts, nor a
database dump, nor a NATS user that reads the bucket can recover a key. Keys are base64 text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


class SealError(ValueError):
    """A seal key that is not one, or a ciphertext this private key cannot open. The message
    never contains key material."""


def generate_keypair() -> tuple[str, str]:
    """A new pair, ``(private, public)``, each base64 of 32 bytes."""
    private = PrivateKey.generate()
    return _b64(bytes(private)), _b64(bytes(private.public_key))


def public_of(private_b64: str) -> str:
    return _b64(bytes(_private(private_b64).public_key))


def seal(public_b64: str, secret: str) -> str:
    """``secret`` sealed to the public key, as base64; only the private key opens it."""
    try:
        public = PublicKey(_raw(public_b64))
    except (ValueError, TypeError) as exc:
        raise SealError("the upstream seal public key is not a 32-byte base64 key") from exc
    return _b64(SealedBox(public).encrypt(secret.encode()))


def unseal(private_b64: str, sealed: str) -> str:
    try:
        return SealedBox(_private(private_b64)).decrypt(_raw(sealed)).decode()
    except (CryptoError, UnicodeDecodeError, SealError) as exc:
        raise SealError("a sealed upstream key does not open with this private key") from exc


def fingerprint(secret: str) -> str:
    """A short, stable digest of a key: its identity in the pool without its material."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def hint(secret: str) -> str:
    """What an answer shows of a key: its last four characters."""
    return f"...{secret[-4:]}" if len(secret) > 8 else "..."


def _private(private_b64: str) -> PrivateKey:
    try:
        return PrivateKey(_raw(private_b64))
    except (ValueError, TypeError) as exc:
        raise SealError("the upstream seal private key is not a 32-byte base64 key") from exc


def _raw(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealError("not base64") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def main() -> None:
    private, public = generate_keypair()
    print(f"AIAPI_UPSTREAM_SEAL_PRIVATE_KEY={private}")
    print(f"AIAPI_UPSTREAM_SEAL_PUBLIC_KEY={public}")


if __name__ == "__main__":
    main()
