"""Private BIP32 derivation, for tests only: it builds the account xpubs the service is given.

The service itself never holds a private key; this helper turns published test mnemonics into
the public keys that the BIP84/BIP44 vectors start from.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from aiapi_payments.keys import ExtendedPublicKey, base58check_encode, hash160
from coincurve import PrivateKey

HARDENED = 0x80000000
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    normalized = unicodedata.normalize("NFKD", mnemonic)
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase)
    return hashlib.pbkdf2_hmac("sha512", normalized.encode(), salt.encode(), 2048)


class PrivateNode:
    def __init__(self, secret: bytes, chain_code: bytes, depth: int, parent_fp: bytes, child: int):
        self.secret, self.chain_code = secret, chain_code
        self.depth, self.parent_fp, self.child_number = depth, parent_fp, child

    @classmethod
    def master(cls, seed: bytes) -> PrivateNode:
        digest = hmac.digest(b"Bitcoin seed", seed, hashlib.sha512)
        return cls(digest[:32], digest[32:], 0, b"\0" * 4, 0)

    @property
    def public_key(self) -> bytes:
        return PrivateKey(self.secret).public_key.format(compressed=True)

    def child(self, index: int) -> PrivateNode:
        if index >= HARDENED:
            data = b"\0" + self.secret + index.to_bytes(4, "big")
        else:
            data = self.public_key + index.to_bytes(4, "big")
        digest = hmac.digest(self.chain_code, data, hashlib.sha512)
        secret = (int.from_bytes(digest[:32], "big") + int.from_bytes(self.secret, "big")) % _ORDER
        return PrivateNode(
            secret.to_bytes(32, "big"),
            digest[32:],
            self.depth + 1,
            hash160(self.public_key)[:4],
            index,
        )

    def path(self, text: str) -> PrivateNode:
        node = self
        for part in text.removeprefix("m/").split("/"):
            hardened = part.endswith(("'", "h", "H"))
            node = node.child(int(part.rstrip("'hH")) + (HARDENED if hardened else 0))
        return node

    def neuter(self, version: bytes) -> ExtendedPublicKey:
        return ExtendedPublicKey(
            version, self.depth, self.parent_fp, self.child_number, self.chain_code, self.public_key
        )

    def serialize_private(self, version: bytes) -> str:
        payload = (
            version
            + bytes([self.depth])
            + self.parent_fp
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + b"\0"
            + self.secret
        )
        return base58check_encode(payload)
