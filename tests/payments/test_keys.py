"""BIP32 public derivation, checked against the published BIP32, BIP84 and BIP44 vectors."""

from __future__ import annotations

import pytest
from aiapi_payments.addresses import BitcoinNetwork, eth_address, p2wpkh_address, p2wpkh_script
from aiapi_payments.keys import (
    InvalidKey,
    PrivateKeyRefused,
    ScriptKind,
    base58check_decode,
    base58check_encode,
    parse_extended_public_key,
)

from tests.payments.hd import PrivateNode, seed_from_mnemonic

ABANDON = "abandon " * 11 + "about"

# BIP32 test vector 1 (seed 000102030405060708090a0b0c0d0e0f).
VECTOR1_M_0H_1_2H_2 = (
    "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62c"
    "fN7fe5JnJ7dh8zL4fiyLHV"
)
VECTOR1_M_0H_1_2H_2_1000000000 = (
    "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasT"
    "vXEYBVPamhGW6cFJodrTHy"
)
VECTOR1_M_XPRV = (
    "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU"
    "3TGtRBeJgk33yuGBxrMPHi"
)
# BIP84 account 0 of the "abandon ... about" mnemonic, and its first receive addresses.
BIP84_ZPUB = (
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf"
    "31mGDtKsAYz2oz2AGutZYs"
)


def test_public_derivation_matches_bip32_vector_1() -> None:
    node = parse_extended_public_key(VECTOR1_M_0H_1_2H_2)
    assert node.depth == 4
    assert node.child(1000000000).serialize() == VECTOR1_M_0H_1_2H_2_1000000000


def test_serialization_round_trips() -> None:
    assert parse_extended_public_key(BIP84_ZPUB).serialize() == BIP84_ZPUB


def test_bip84_zpub_gives_the_published_addresses() -> None:
    account = parse_extended_public_key(BIP84_ZPUB)
    assert account.prefix == "zpub"
    assert account.script_kind is ScriptKind.NATIVE_SEGWIT
    first = account.deposit_key(0)
    assert first.hex() == "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"
    assert p2wpkh_address(first, BitcoinNetwork.MAINNET) == (
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    )
    assert p2wpkh_address(account.deposit_key(1), BitcoinNetwork.MAINNET) == (
        "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    )
    assert p2wpkh_script(first) == "0014c0cebcd6c3d3ca8c75dc5ec62ebe55330ef910e2"


def test_the_test_helper_reproduces_the_bip84_account_key() -> None:
    # The anvil and Esplora tests build their xpubs with tests/payments/hd.py; pin it first.
    node = PrivateNode.master(seed_from_mnemonic(ABANDON)).path("m/84'/0'/0'")
    assert node.neuter(bytes.fromhex("04b24746")).serialize() == BIP84_ZPUB


def test_bip44_ethereum_account_gives_the_well_known_first_address() -> None:
    node = PrivateNode.master(seed_from_mnemonic(ABANDON)).path("m/44'/60'/0'")
    xpub = node.neuter(bytes.fromhex("0488b21e")).serialize()
    account = parse_extended_public_key(xpub)
    assert eth_address(account.deposit_key(0)) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


def test_private_extended_keys_are_refused_without_echo() -> None:
    with pytest.raises(PrivateKeyRefused) as caught:
        parse_extended_public_key(VECTOR1_M_XPRV)
    assert "xprv" in str(caught.value)
    assert VECTOR1_M_XPRV not in str(caught.value)


def test_private_key_data_under_a_public_version_is_refused() -> None:
    payload = bytearray(base58check_decode(VECTOR1_M_XPRV))
    payload[:4] = bytes.fromhex("0488b21e")
    with pytest.raises(PrivateKeyRefused):
        parse_extended_public_key(base58check_encode(bytes(payload)))


def test_a_typo_fails_the_checksum() -> None:
    typo = BIP84_ZPUB[:-1] + ("t" if BIP84_ZPUB[-1] != "t" else "u")
    with pytest.raises(InvalidKey, match="checksum"):
        parse_extended_public_key(typo)


def test_hardened_public_derivation_is_impossible() -> None:
    with pytest.raises(InvalidKey, match="non-hardened"):
        parse_extended_public_key(BIP84_ZPUB).child(0x80000000)
