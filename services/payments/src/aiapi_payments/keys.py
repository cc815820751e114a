"""Watch-only BIP32 keys: parse an extended *public* key and derive the deposit keys below it.

Pure: no I/O. Only public derivation (CKDpub) exists here; an extended private key is refused
on sight, and the error never repeats the string it was given.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from coincurve import PublicKey

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58_ALPHABET)}
_HARDENED = 0x80000000
_SERIALIZED_LENGTH = 78


class InvalidKey(ValueError):
    """A configured key is malformed; the message names the problem, never the key."""


class PrivateKeyRefused(InvalidKey):
    """A private key was given where only a public one is allowed."""


class Network(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"


class ScriptKind(StrEnum):
    """What the version bytes promise about the addresses a wallet derives from the key."""

    LEGACY = "legacy"  # xpub / tpub: BIP44 (also what Ethereum wallets export)
    NESTED_SEGWIT = "nested-segwit"  # ypub / upub: BIP49
    NATIVE_SEGWIT = "native-segwit"  # zpub / vpub: BIP84


# SLIP-0132 version bytes of the single-signature public keys.
PUBLIC_VERSIONS: dict[bytes, tuple[str, Network, ScriptKind]] = {
    bytes.fromhex("0488b21e"): ("xpub", Network.MAINNET, ScriptKind.LEGACY),
    bytes.fromhex("049d7cb2"): ("ypub", Network.MAINNET, ScriptKind.NESTED_SEGWIT),
    bytes.fromhex("04b24746"): ("zpub", Network.MAINNET, ScriptKind.NATIVE_SEGWIT),
    bytes.fromhex("043587cf"): ("tpub", Network.TESTNET, ScriptKind.LEGACY),
    bytes.fromhex("044a5262"): ("upub", Network.TESTNET, ScriptKind.NESTED_SEGWIT),
    bytes.fromhex("045f1cf6"): ("vpub", Network.TESTNET, ScriptKind.NATIVE_SEGWIT),
}

# Their private counterparts, recognised only to refuse them.
PRIVATE_VERSIONS: dict[bytes, str] = {
    bytes.fromhex("0488ade4"): "xprv",
    bytes.fromhex("049d7878"): "yprv",
    bytes.fromhex("04b2430c"): "zprv",
    bytes.fromhex("04358394"): "tprv",
    bytes.fromhex("044a4e28"): "uprv",
    bytes.fromhex("045f18bc"): "vprv",
}


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise InvalidKey("not base58: contains a character outside the alphabet")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + body


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        chars.append(_BASE58_ALPHABET[digit])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(chars))


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def base58check_decode(text: str) -> bytes:
    raw = base58_decode(text)
    if len(raw) < 5:
        raise InvalidKey("not base58check: too short")
    payload, checksum = raw[:-4], raw[-4:]
    if not hmac.compare_digest(_checksum(payload), checksum):
        raise InvalidKey("base58check checksum does not match (a typo?)")
    return payload


def base58check_encode(payload: bytes) -> str:
    return base58_encode(payload + _checksum(payload))


def hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)); falls back to pycryptodome where OpenSSL lacks RIPEMD160."""
    digest = hashlib.sha256(data).digest()
    try:
        return hashlib.new("ripemd160", digest).digest()
    except ValueError:  # OpenSSL 3 without the legacy provider
        from Crypto.Hash import RIPEMD160

        return RIPEMD160.new(digest).digest()


@dataclass(frozen=True)
class ExtendedPublicKey:
    """A BIP32 node that can derive public children only."""

    version: bytes
    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    public_key: bytes  # compressed SEC1, 33 bytes

    @property
    def prefix(self) -> str:
        return PUBLIC_VERSIONS[self.version][0]

    @property
    def network(self) -> Network:
        return PUBLIC_VERSIONS[self.version][1]

    @property
    def script_kind(self) -> ScriptKind:
        return PUBLIC_VERSIONS[self.version][2]

    @property
    def fingerprint(self) -> bytes:
        return hash160(self.public_key)[:4]

    def child(self, index: int) -> ExtendedPublicKey:
        """CKDpub: the non-hardened child `index` of this node."""
        if not 0 <= index < _HARDENED:
            raise InvalidKey("a public key can derive only non-hardened children")
        digest = hmac.digest(
            self.chain_code, self.public_key + index.to_bytes(4, "big"), hashlib.sha512
        )
        tweak, chain_code = digest[:32], digest[32:]
        try:
            # K_i = K + IL*G; coincurve refuses IL >= n and the point at infinity, the two
            # cases BIP32 calls invalid (probability below 2^-127).
            child_key = PublicKey(self.public_key).add(tweak)
        except ValueError as error:
            raise InvalidKey(f"child {index} is invalid; use the next index") from error
        return ExtendedPublicKey(
            version=self.version,
            depth=self.depth + 1,
            parent_fingerprint=self.fingerprint,
            child_number=index,
            chain_code=chain_code,
            public_key=child_key.format(compressed=True),
        )

    def deposit_key(self, index: int) -> bytes:
        """The compressed public key of the external-chain address `0/index`."""
        return self.child(0).child(index).public_key

    def serialize(self) -> str:
        payload = (
            self.version
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + self.public_key
        )
        return base58check_encode(payload)


def parse_extended_public_key(text: str) -> ExtendedPublicKey:
    """Parse an xpub/ypub/zpub/tpub/upub/vpub; refuse private keys and anything malformed."""
    payload = base58check_decode(text.strip())
    if len(payload) != _SERIALIZED_LENGTH:
        raise InvalidKey("not an extended key: wrong length")
    version = payload[:4]
    if version in PRIVATE_VERSIONS:
        raise PrivateKeyRefused(
            f"an extended private key ({PRIVATE_VERSIONS[version]}) was given; "
            "configure the account-level extended public key instead"
        )
    if version not in PUBLIC_VERSIONS:
        raise InvalidKey("unknown extended key version bytes")
    key_data = payload[45:78]
    if key_data[0] == 0:
        raise PrivateKeyRefused("the key data is a private key; configure a public key")
    if key_data[0] not in (2, 3):
        raise InvalidKey("the key data is not a compressed public key")
    try:
        PublicKey(key_data)
    except ValueError as error:
        raise InvalidKey("the key data is not a point on secp256k1") from error
    depth = payload[4]
    parent_fingerprint = payload[5:9]
    child_number = int.from_bytes(payload[9:13], "big")
    if depth == 0 and (parent_fingerprint != b"\x00" * 4 or child_number != 0):
        raise InvalidKey("a master key must have a zero fingerprint and child number")
    return ExtendedPublicKey(
        version=version,
        depth=depth,
        parent_fingerprint=parent_fingerprint,
        child_number=child_number,
        chain_code=payload[13:45],
        public_key=key_data,
    )
