"""Start-up checks that need no network: keys, depth, address 0, minimums, secrets in settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiapi_payments.config import StartupRefused, build_config
from aiapi_payments.model import Asset, ChainNetwork
from aiapi_payments.policy import parse_usd
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.startup import configured_values, load

from tests.payments.hd import PrivateNode, seed_from_mnemonic
from tests.payments.test_keys import ABANDON, BIP84_ZPUB
from tests.payments.wallets import (
    BTC_ADDRESS_0,
    BTC_VPUB,
    ETH_ADDRESS_0,
    ETH_XPRV,
    ETH_XPUB,
    XPUB_VERSION,
)

ETH = {
    "eth_rpc_url": "http://127.0.0.1:9",
    "eth_xpub": ETH_XPUB,
    "eth_address_0": ETH_ADDRESS_0,
}
BTC = {
    "btc_esplora_url": "http://127.0.0.1:9",
    "btc_network": "regtest",
    "btc_xpub": BTC_VPUB,
    "btc_address_0": BTC_ADDRESS_0,
}


def settings(**values: object) -> PaymentsSettings:
    return PaymentsSettings(price_sources="", **values)  # type: ignore[arg-type]


def refusal(**values: object) -> str:
    with pytest.raises(StartupRefused) as caught:
        build_config(settings(**values))
    return str(caught.value)


def test_with_both_chains_off_nothing_is_enabled() -> None:
    config = build_config(settings())
    assert (config.networks, config.assets) == ([], [])


def test_both_chains_on_enable_four_assets_and_derive_from_index_0() -> None:
    config = build_config(settings(**ETH, **BTC))
    assert config.assets == [Asset.USDT, Asset.USDC, Asset.ETH, Asset.BTC]
    assert config.derive(ChainNetwork.ETHEREUM, 0).address == ETH_ADDRESS_0
    derived = config.derive(ChainNetwork.BITCOIN, 0)
    assert derived.address == BTC_ADDRESS_0
    assert derived.script is not None and derived.script.startswith("0014")


def test_address_0_must_match_the_key() -> None:
    message = refusal(**{**ETH, "eth_address_0": "0x" + "11" * 20})
    assert "AIAPI_ETH_ADDRESS_0 does not match" in message
    assert ETH_ADDRESS_0 in message  # the derived (public) address helps the operator
    assert "AIAPI_BTC_ADDRESS_0 does not match" in refusal(
        **{**BTC, "btc_address_0": "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqvl6xqe"}
    )


def test_address_0_and_the_key_are_required_with_their_chain() -> None:
    assert "AIAPI_ETH_ADDRESS_0 is required" in refusal(**{**ETH, "eth_address_0": None})
    assert "AIAPI_BTC_XPUB is required" in refusal(**{**BTC, "btc_xpub": None})


def test_only_account_level_keys_of_the_right_kind_and_network() -> None:
    wallet = PrivateNode.master(seed_from_mnemonic(ABANDON))
    too_deep = wallet.path("m/44'/60'/0'/0").neuter(XPUB_VERSION).serialize()
    assert "depth 3" in refusal(**{**ETH, "eth_xpub": too_deep})
    assert "does not fit" in refusal(**{**ETH, "eth_xpub": BTC_VPUB})
    # A mainnet zpub on a regtest watcher: refused before any address is compared.
    assert "mainnet key" in refusal(**{**BTC, "btc_xpub": BIP84_ZPUB})


def test_a_private_key_given_as_the_xpub_is_refused_without_repeating_it() -> None:
    message = refusal(**{**ETH, "eth_xpub": ETH_XPRV})
    assert "AIAPI_ETH_XPUB" in message and ETH_XPRV not in message


def test_minimums_per_asset_replace_the_default() -> None:
    config = build_config(settings(min_deposit_usd="2", min_deposit_by_asset="BTC:20.5"))
    assert config.minimum(Asset.USDT) == parse_usd("2")
    assert config.minimum(Asset.BTC) == parse_usd("20.5")
    assert "AIAPI_MIN_DEPOSIT" in refusal(min_deposit_by_asset="DOGE:1")


def test_the_guard_reads_every_aiapi_variable_and_secret_file(tmp_path: Path) -> None:
    (tmp_path / "eth_xpub").write_text(ETH_XPUB)
    (tmp_path / "notes").write_text(ABANDON)
    environ = {"AIAPI_SECRETS_DIR": str(tmp_path), "AIAPI_LOG_LEVEL": "info", "HOME": "/root"}
    values = configured_values(environ)
    assert set(values) == {
        "AIAPI_SECRETS_DIR",
        "AIAPI_LOG_LEVEL",
        "AIAPI_SECRETS_DIR/eth_xpub",
        "AIAPI_SECRETS_DIR/notes",
    }
    with pytest.raises(StartupRefused) as caught:
        load(environ)
    assert "AIAPI_SECRETS_DIR/notes holds a BIP39 mnemonic" in str(caught.value)
    assert "abandon" not in str(caught.value)
