"""The operator's wallets of the tests: account-level public keys and their index-0 addresses.

Derived from the published "abandon ... about" test mnemonic, so anyone can check them.
"""

from __future__ import annotations

from aiapi_payments.addresses import BitcoinNetwork, eth_address, p2wpkh_address, tron_address
from aiapi_payments.keys import parse_extended_public_key

from tests.payments.hd import PrivateNode, seed_from_mnemonic
from tests.payments.test_keys import ABANDON

XPUB_VERSION = bytes.fromhex("0488b21e")
XPRV_VERSION = bytes.fromhex("0488ade4")
VPUB_VERSION = bytes.fromhex("045f1cf6")

_MASTER = PrivateNode.master(seed_from_mnemonic(ABANDON))
ETH_ACCOUNT = _MASTER.path("m/44'/60'/0'")
BTC_ACCOUNT = _MASTER.path("m/84'/1'/0'")
TRON_ACCOUNT = _MASTER.path("m/44'/195'/0'")

ETH_XPUB = ETH_ACCOUNT.neuter(XPUB_VERSION).serialize()
ETH_XPRV = ETH_ACCOUNT.serialize_private(XPRV_VERSION)  # for the refusal tests only
BTC_VPUB = BTC_ACCOUNT.neuter(VPUB_VERSION).serialize()  # regtest/testnet BIP84 account
TRON_XPUB = TRON_ACCOUNT.neuter(XPUB_VERSION).serialize()  # BIP44 coin 195


def eth_deposit_address(index: int) -> str:
    return eth_address(parse_extended_public_key(ETH_XPUB).deposit_key(index))


def btc_deposit_address(index: int) -> str:
    key = parse_extended_public_key(BTC_VPUB).deposit_key(index)
    return p2wpkh_address(key, BitcoinNetwork.REGTEST)


def tron_deposit_address(index: int) -> str:
    return tron_address(parse_extended_public_key(TRON_XPUB).deposit_key(index))


ETH_ADDRESS_0 = eth_deposit_address(0)
TRON_ADDRESS_0 = tron_deposit_address(0)
BTC_ADDRESS_0 = btc_deposit_address(0)
