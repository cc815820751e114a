"""Refuse to run with a private key or a mnemonic in the settings (watch-only, DESIGN.md §7).

Pure: it inspects strings it is handed and raises; errors name the setting and the kind of
secret, never the value.

What counts as a secret, in every setting:
- an extended private key (xprv, yprv, zprv, tprv, uprv, vprv), checksum valid or not: a
  mistyped private key is still private;
- a WIF private key (base58check, version 0x80 or 0xef, 32 bytes, optional compression flag);
- a BIP39 mnemonic: twelve or more consecutive words of the English list.

And, only in the settings meant to hold keys or addresses (`*_XPUB`, `*_ADDRESS_0`, and names
containing PRIVATE, SEED, MNEMONIC or WALLET): a bare 64-hex-digit value (with or without 0x),
the shape of a raw secp256k1 private key. Elsewhere 64 hex digits are as likely a token or a
transaction hash (`AIAPI_ADMIN_TOKEN` is often one), and a 40-hex address is never one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from importlib import resources

from aiapi_payments.keys import PRIVATE_VERSIONS, InvalidKey, base58check_decode

_MIN_MNEMONIC_WORDS = 12
_TOKEN_SPLIT = re.compile(r"[\s,;\"'=:/?&|]+")
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_KEY_SETTING = re.compile(r"(_XPUB$|_ADDRESS_0$|PRIVATE|SEED|MNEMONIC|WALLET)")
_WIF_VERSIONS = (0x80, 0xEF)
_PRIVATE_PREFIXES = tuple(PRIVATE_VERSIONS.values())


class SecretKind(StrEnum):
    EXTENDED_PRIVATE_KEY = "an extended private key"
    WIF_PRIVATE_KEY = "a WIF private key"
    HEX_PRIVATE_KEY = "a raw hex private key"
    MNEMONIC = "a BIP39 mnemonic"


class SecretInSettings(ValueError):
    def __init__(self, setting: str, kind: SecretKind) -> None:
        self.setting = setting
        self.kind = kind
        super().__init__(
            f"{setting} holds {kind}. The payments service is watch-only: it takes account-level "
            "extended public keys (xpub/zpub/vpub) and never a private key or mnemonic. "
            "Remove the secret from the setting (and rotate it if it left your wallet)."
        )


@cache
def _english_words() -> frozenset[str]:
    # web3 depends on eth-account, which ships the BIP39 English list as package data.
    text = (
        resources.files("eth_account.hdaccount")
        .joinpath("wordlist", "english.txt")
        .read_text("utf-8")
    )
    words = frozenset(text.split())
    assert len(words) == 2048
    return words


def _is_extended_private_key(token: str) -> bool:
    # Prefix and length are decisive (no checksum test): an xprv with a typo is still private.
    return token.startswith(_PRIVATE_PREFIXES) and len(token) >= 100


def _is_wif(token: str) -> bool:
    if not 50 <= len(token) <= 53:
        return False
    try:
        payload = base58check_decode(token)
    except InvalidKey:
        return False
    if payload[0] not in _WIF_VERSIONS:
        return False
    return len(payload) == 33 or (len(payload) == 34 and payload[33] == 1)


def _has_mnemonic(value: str) -> bool:
    words = _english_words()
    run = 0
    for word in value.lower().split():
        run = run + 1 if word in words else 0
        if run >= _MIN_MNEMONIC_WORDS:
            return True
    return False


def find_secret(setting: str, value: str) -> SecretKind | None:
    """The kind of secret `value` holds, or None."""
    if _has_mnemonic(value):
        return SecretKind.MNEMONIC
    for token in _TOKEN_SPLIT.split(value):
        if _is_extended_private_key(token):
            return SecretKind.EXTENDED_PRIVATE_KEY
        if _is_wif(token):
            return SecretKind.WIF_PRIVATE_KEY
    if _KEY_SETTING.search(setting.upper()) and _HEX_KEY.fullmatch(value.strip()):
        return SecretKind.HEX_PRIVATE_KEY
    return None


def refuse_secrets(settings: Mapping[str, str]) -> None:
    """Raise SecretInSettings for the first setting that holds a secret."""
    for setting, value in settings.items():
        kind = find_secret(setting, value)
        if kind is not None:
            raise SecretInSettings(setting, kind)
