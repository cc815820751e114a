"""A private key or a mnemonic in any setting stops the service; the error never repeats it."""

from __future__ import annotations

import pytest
from aiapi_payments.keys import base58check_encode
from aiapi_payments.secrets_guard import SecretInSettings, SecretKind, find_secret, refuse_secrets

from tests.payments.hd import PrivateNode, seed_from_mnemonic
from tests.payments.test_keys import ABANDON, BIP84_ZPUB

NODE = PrivateNode.master(seed_from_mnemonic(ABANDON)).path("m/84'/0'/0'")
ZPRV = NODE.serialize_private(bytes.fromhex("04b2430c"))
WIF = base58check_encode(b"\x80" + NODE.secret + b"\x01")
TESTNET_WIF = base58check_encode(b"\xef" + NODE.secret)
HEX_KEY = NODE.secret.hex()


@pytest.mark.parametrize(
    ("setting", "value", "kind"),
    [
        ("AIAPI_BTC_XPUB", ZPRV, SecretKind.EXTENDED_PRIVATE_KEY),
        ("AIAPI_BTC_XPUB", ZPRV[:-1] + "x", SecretKind.EXTENDED_PRIVATE_KEY),
        ("AIAPI_PRICE_SOURCES", f"coinbase,{WIF}", SecretKind.WIF_PRIVATE_KEY),
        ("AIAPI_NOTE", TESTNET_WIF, SecretKind.WIF_PRIVATE_KEY),
        ("AIAPI_ETH_XPUB", ABANDON, SecretKind.MNEMONIC),
        ("AIAPI_ANYTHING", f"  {ABANDON.upper()}  ", SecretKind.MNEMONIC),
        ("AIAPI_ETH_XPUB", HEX_KEY, SecretKind.HEX_PRIVATE_KEY),
        ("AIAPI_ETH_ADDRESS_0", "0x" + HEX_KEY, SecretKind.HEX_PRIVATE_KEY),
        ("AIAPI_WALLET_SEED", HEX_KEY, SecretKind.HEX_PRIVATE_KEY),
    ],
)
def test_secrets_are_found(setting: str, value: str, kind: SecretKind) -> None:
    assert find_secret(setting, value) is kind


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("AIAPI_BTC_XPUB", BIP84_ZPUB),
        ("AIAPI_ETH_ADDRESS_0", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"),
        ("AIAPI_USDT_CONTRACT", "0xdAC17F958D2ee523a2206206994597C13D831ec7"),
        ("AIAPI_ADMIN_TOKEN", HEX_KEY),  # 64 hex outside a key setting: a token, not a key
        ("AIAPI_MIN_DEPOSIT_USD", "1.00"),
        ("AIAPI_GREETING", "abandon ship and about face"),  # a few list words are prose
        ("AIAPI_BTC_ADDRESS_0", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"),
    ],
)
def test_public_values_pass(setting: str, value: str) -> None:
    assert find_secret(setting, value) is None


def test_refusal_names_the_setting_and_never_the_secret() -> None:
    settings = {"AIAPI_BTC_XPUB": BIP84_ZPUB, "AIAPI_ETH_XPUB": ABANDON}
    with pytest.raises(SecretInSettings) as caught:
        refuse_secrets(settings)
    message = str(caught.value)
    assert "AIAPI_ETH_XPUB" in message
    assert "mnemonic" in message
    assert "abandon" not in message.lower()
