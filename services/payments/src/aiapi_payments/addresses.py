"""Deposit addresses from public keys: BIP84 P2WPKH (bech32, BIP173), Ethereum (EIP-55) and
TRON (base58check of 0x41 + the same 20 bytes as Ethereum's).

Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum

from coincurve import PublicKey
from eth_hash.auto import keccak

from aiapi_payments.keys import InvalidKey, base58check_decode, base58check_encode, hash160

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONSTANT = 1  # witness version 0 uses bech32, not bech32m
TRON_PREFIX = b"\x41"  # mainnet (and the Nile/Shasta testnets): addresses start with "T"


class BitcoinNetwork(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    REGTEST = "regtest"

    @property
    def hrp(self) -> str:
        return {"mainnet": "bc", "testnet": "tb", "regtest": "bcrt"}[self.value]


class InvalidAddress(ValueError):
    pass


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    accumulator = 0
    bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        if value >> from_bits:
            raise InvalidAddress("value out of range for its bit width")
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((accumulator >> bits) & mask)
    if pad:
        if bits:
            out.append((accumulator << (to_bits - bits)) & mask)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & mask:
        raise InvalidAddress("non-zero padding")
    return out


def bech32_encode(hrp: str, data: list[int]) -> str:
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ _BECH32_CONSTANT
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in [*data, *checksum])


def bech32_decode(text: str) -> tuple[str, list[int]]:
    if text.lower() != text and text.upper() != text:
        raise InvalidAddress("mixed case")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or separator + 7 > len(text) or len(text) > 90:
        raise InvalidAddress("bad length or separator")
    hrp = text[:separator]
    try:
        data = [_CHARSET_INDEX[c] for c in text[separator + 1 :]]
    except KeyError as error:
        raise InvalidAddress("character outside the bech32 alphabet") from error
    if _polymod(_hrp_expand(hrp) + data) != _BECH32_CONSTANT:
        raise InvalidAddress("bech32 checksum does not match")
    return hrp, data[:-6]


def segwit_v0_address(hrp: str, program: bytes) -> str:
    return bech32_encode(hrp, [0, *_convert_bits(program, 8, 5, pad=True)])


def decode_segwit_v0_address(address: str, network: BitcoinNetwork) -> bytes:
    """The witness program of a version-0 address of `network`; raises on anything else."""
    hrp, data = bech32_decode(address)
    if hrp != network.hrp:
        raise InvalidAddress(f"not a {network} address")
    if not data or data[0] != 0:
        raise InvalidAddress("not a witness version 0 address")
    program = bytes(_convert_bits(data[1:], 5, 8, pad=False))
    if len(program) not in (20, 32):
        raise InvalidAddress("wrong witness program length")
    return program


def p2wpkh_address(public_key: bytes, network: BitcoinNetwork) -> str:
    """BIP84 address of a compressed public key."""
    return segwit_v0_address(network.hrp, hash160(public_key))


def p2wpkh_script(public_key: bytes) -> str:
    """The output script (hex, as Esplora's `scriptpubkey`) paying to a compressed public key."""
    return "0014" + hash160(public_key).hex()


def eth_address(public_key: bytes) -> str:
    """EIP-55 checksummed Ethereum address of a secp256k1 public key (either SEC1 form)."""
    return to_checksum_address(_eth_body(public_key).hex())


def to_checksum_address(address: str) -> str:
    """EIP-55: uppercase each hex letter whose nibble in keccak(lowercase address) is >= 8."""
    body = address.lower().removeprefix("0x")
    if len(body) != 40 or any(c not in "0123456789abcdef" for c in body):
        raise InvalidAddress("not a 20-byte hex address")
    digest = keccak(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(body))


def is_checksum_valid(address: str) -> bool:
    """True for an all-lowercase/all-uppercase address or one with a correct EIP-55 checksum."""
    body = address.removeprefix("0x")
    try:
        checksummed = to_checksum_address(body)
    except InvalidAddress:
        return False
    return body in (body.lower(), body.upper()) or checksummed == "0x" + body


def _eth_body(public_key: bytes) -> bytes:
    uncompressed = PublicKey(public_key).format(compressed=False)
    return keccak(uncompressed[1:])[-20:]


def tron_address(public_key: bytes) -> str:
    """TRON base58check address (`T...`) of a secp256k1 public key."""
    return base58check_encode(TRON_PREFIX + _eth_body(public_key))


def tron_from_hex(address: str) -> str:
    """The TRON form of a 20-byte address as TRON's Ethereum-compatible JSON-RPC writes it."""
    body = bytes.fromhex(to_checksum_address(address)[2:])
    return base58check_encode(TRON_PREFIX + body)


def tron_to_hex(address: str) -> str:
    """The 0x form (EIP-55) of a TRON base58 address, as its JSON-RPC expects it."""
    try:
        payload = base58check_decode(address.strip())
    except InvalidKey as error:
        raise InvalidAddress(f"not a TRON address: {error}") from None
    if len(payload) != 21 or payload[:1] != TRON_PREFIX:
        raise InvalidAddress("not a TRON address: 21 bytes starting with 0x41 expected")
    return to_checksum_address(payload[1:].hex())
