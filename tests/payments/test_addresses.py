"""Bech32 (BIP173) and EIP-55 addresses."""

from __future__ import annotations

import pytest
from aiapi_payments.addresses import (
    BitcoinNetwork,
    InvalidAddress,
    decode_segwit_v0_address,
    is_checksum_valid,
    p2wpkh_address,
    to_checksum_address,
)

GENERATOR = bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")

EIP55_VECTORS = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert is_checksum_valid(address)


def test_a_wrong_eip55_checksum_is_detected() -> None:
    address = EIP55_VECTORS[0]
    assert not is_checksum_valid(address[:2] + address[2:].swapcase())


def test_bip173_p2wpkh_of_the_generator_point() -> None:
    # BIP173's example: the P2WPKH address of the key 0279BE66...
    assert p2wpkh_address(GENERATOR, BitcoinNetwork.MAINNET) == (
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    )
    assert p2wpkh_address(GENERATOR, BitcoinNetwork.TESTNET).startswith("tb1qw508d6qejxtdg4y5r3")
    assert p2wpkh_address(GENERATOR, BitcoinNetwork.REGTEST).startswith("bcrt1q")


def test_decoding_checks_checksum_and_network() -> None:
    address = p2wpkh_address(GENERATOR, BitcoinNetwork.MAINNET)
    program = decode_segwit_v0_address(address.upper(), BitcoinNetwork.MAINNET)
    assert program.hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"
    with pytest.raises(InvalidAddress, match="not a testnet address"):
        decode_segwit_v0_address(address, BitcoinNetwork.TESTNET)
    with pytest.raises(InvalidAddress, match="checksum"):
        decode_segwit_v0_address(address[:-1] + "q", BitcoinNetwork.MAINNET)
