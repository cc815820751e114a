"""Networks as data: AIAPI_EVM_CHAINS, the built-in defaults, TRON keys and addresses.

Derivation is checked against published vectors: Trust Wallet Core's HDWallet tests
(`getAddressForCoin`, the default path m/44'/coin'/0'/0/0), as its Flutter binding publishes
them in `example/integration_test` of github.com/weishirongzhen/flutter_trust_wallet_core_lib_include:
coin 60 for "capable obvious tired suit bomb swap street arrange room country mouse tackle" is
0x258A4ee661364AD65923Ae45970382Ba6409b857, coin 195 for "bean stone deal ship become wash net
shift spoil embark luggage sand" is TSiXa4Yv9kwqZaw71fvMjLd5QcrQRzJdhc.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiapi_payments.addresses import (
    InvalidAddress,
    eth_address,
    tron_address,
    tron_from_hex,
    tron_to_hex,
)
from aiapi_payments.config import StartupRefused, build_config
from aiapi_payments.depeg import DepegGuard
from aiapi_payments.evm_networks import KNOWN_NETWORKS, NetworkSettingError, parse_evm_chains
from aiapi_payments.keys import parse_extended_public_key
from aiapi_payments.model import Asset, ChainNetwork, KeyChain
from aiapi_payments.policy import DepegBand, PolicyError
from aiapi_payments.pricing import Quote
from aiapi_payments.settings import PaymentsSettings

from tests.payments.hd import PrivateNode, seed_from_mnemonic
from tests.payments.wallets import (
    ETH_ADDRESS_0,
    ETH_XPUB,
    TRON_ADDRESS_0,
    TRON_XPUB,
    XPUB_VERSION,
    eth_deposit_address,
    tron_deposit_address,
)

TRUST_ETH = (
    "capable obvious tired suit bomb swap street arrange room country mouse tackle",
    "0x258A4ee661364AD65923Ae45970382Ba6409b857",
)
TRUST_TRON = (
    "bean stone deal ship become wash net shift spoil embark luggage sand",
    "TSiXa4Yv9kwqZaw71fvMjLd5QcrQRzJdhc",
)
TRON_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
EVM = {"eth_xpub": ETH_XPUB, "eth_address_0": ETH_ADDRESS_0}
TRON = {
    "tron_rpc_url": "http://127.0.0.1:9",
    "tron_xpub": TRON_XPUB,
    "tron_address_0": TRON_ADDRESS_0,
}


def account_xpub(mnemonic: str, path: str) -> str:
    node = PrivateNode.master(seed_from_mnemonic(mnemonic)).path(path)
    return node.neuter(XPUB_VERSION).serialize()


def test_published_vectors_from_the_account_xpub() -> None:
    """The service only holds the account key: 0/0 below it must be the wallet's first address."""
    eth = parse_extended_public_key(account_xpub(TRUST_ETH[0], "m/44'/60'/0'"))
    assert eth_address(eth.deposit_key(0)) == TRUST_ETH[1]
    tron = parse_extended_public_key(account_xpub(TRUST_TRON[0], "m/44'/195'/0'"))
    assert tron_address(tron.deposit_key(0)) == TRUST_TRON[1]


def test_tron_addresses_convert_to_and_from_the_json_rpc_form() -> None:
    # TRON's USDT: 41a614f803b6fd780986a42c78ec9c7f77e6ded13c in TRON's own hex form.
    assert tron_to_hex(TRON_USDT).lower() == "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c"
    assert tron_from_hex("0xa614f803b6fd780986a42c78ec9c7f77e6ded13c") == TRON_USDT
    for bad in (
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",
        ETH_ADDRESS_0,
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    ):
        with pytest.raises(InvalidAddress):
            tron_to_hex(bad)


def test_one_address_on_every_evm_network_and_tron_from_its_own_key() -> None:
    chains = json.dumps([{"network": "base", "rpc_url": "http://127.0.0.1:9"}])
    config = build_config(
        PaymentsSettings(price_sources="", evm_chains=chains, **EVM, **TRON)  # type: ignore[arg-type]
    )
    assert config.networks == ["base", "tron"]
    assert config.offers == [(Asset.USDC, "base"), (Asset.USDT, "tron")]
    assert config.keychain(ChainNetwork("base")) is KeyChain.EVM
    assert config.derive(ChainNetwork("base"), 3).address == eth_deposit_address(3)
    assert config.derive(ChainNetwork.TRON, 3).address == tron_deposit_address(3)
    tron = config.tron
    assert tron is not None and tron.tokens[0].shown == TRON_USDT
    assert (tron.finality.confirmations, tron.finality.tag) == (20, True)
    assert tron.chain_id == 728126428


def test_built_in_networks_default_everything_but_the_endpoint() -> None:
    specs = parse_evm_chains(
        json.dumps(
            [
                {"network": name, "rpc_url": f"https://{name}.example"}
                for name in ("arbitrum", "base", "optimism", "polygon")
            ]
        )
    )
    shown = {s.network: (s.chain_id, sorted(t.asset.value for t in s.tokens)) for s in specs}
    assert shown == {
        "arbitrum": (42161, ["USDC", "USDT"]),
        "base": (8453, ["USDC"]),
        "optimism": (10, ["USDC", "USDT"]),
        "polygon": (137, ["USDC", "USDT"]),
    }
    assert all(s.native is None and s.finality.tag for s in specs)
    assert KNOWN_NETWORKS["ethereum"].native is Asset.ETH


def test_an_entry_overrides_tokens_finality_and_decimals() -> None:
    (spec,) = parse_evm_chains(
        json.dumps(
            [
                {
                    "network": "bsc",
                    "chain_id": 56,
                    "rpc_url": "https://bsc.example",
                    "finality": 15,
                    "explorer_url": "https://bscscan.com",
                    "tokens": [
                        {
                            "symbol": "USDT",
                            "contract": "0x55d398326f99059ff775485246999027b3197955",
                            "decimals": 18,
                        }
                    ],
                }
            ]
        )
    )
    assert (spec.network, spec.chain_id, spec.finality.confirmations, spec.finality.tag) == (
        "bsc",
        56,
        15,
        False,
    )
    assert spec.tokens[0].decimals == 18
    assert spec.tokens[0].contract == "0x55d398326f99059fF775485246999027B3197955"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{}", "a JSON list"),
        ("[1", "not JSON"),
        ('[{"network": "base"}]', "rpc_url"),
        ('[{"network": "Base!", "rpc_url": "http://x"}]', "network"),
        ('[{"network": "bsc", "rpc_url": "http://x"}]', "chain_id is required"),
        ('[{"network": "bsc", "chain_id": 56, "rpc_url": "http://x"}]', "tokens are required"),
        (
            '[{"network": "base", "rpc_url": "http://x", "tokens": {"DAI": "0x'
            + "11" * 20
            + '"}}]',
            "USDT or USDC",
        ),
        ('[{"network": "base", "rpc_url": "http://x", "tokens": {"USDC": "0x1234"}}]', "20-byte"),
        ('[{"network": "base", "rpc_url": "http://x", "finality": "soon"}]', "finality"),
        ('[{"network": "base", "rpc_url": "http://x", "native": "POL"}]', "native"),
        ('[{"network": "base", "rpc_url": "http://x", "colour": 1}]', "unknown fields"),
        ('[{"network": "tron", "rpc_url": "http://x"}]', "not an EVM network"),
        (
            '[{"network": "base", "rpc_url": "http://x"}, {"network": "base", "rpc_url": "http://y"}]',
            "listed twice",
        ),
        (
            '[{"network": "base", "rpc_url": "http://x"},'
            ' {"network": "mybase", "chain_id": 8453, "rpc_url": "http://y", "native": "ETH",'
            ' "tokens": {}}]',
            "share a chain id",
        ),
        ('[{"network": "base", "rpc_url": "http://x", "tokens": {}}]', "nothing would credit"),
    ],
)
def test_malformed_entries_are_refused_by_name(document: str, message: str) -> None:
    with pytest.raises(NetworkSettingError, match=message):
        parse_evm_chains(document)


def test_the_setting_may_name_a_file(tmp_path: Path) -> None:
    path = tmp_path / "chains.json"
    path.write_text(json.dumps([{"network": "polygon", "rpc_url": "https://polygon.example"}]))
    config = build_config(PaymentsSettings(price_sources="", evm_chains=str(path), **EVM))  # type: ignore[arg-type]
    assert config.networks == ["polygon"]
    with pytest.raises(StartupRefused, match="cannot be read"):
        build_config(PaymentsSettings(price_sources="", evm_chains=str(tmp_path / "none"), **EVM))  # type: ignore[arg-type]


def test_start_up_refusals_name_the_setting() -> None:
    def refused(**values: object) -> str:
        with pytest.raises(StartupRefused) as caught:
            build_config(PaymentsSettings(price_sources="", **values))  # type: ignore[arg-type]
        return str(caught.value)

    base = json.dumps([{"network": "base", "rpc_url": "http://127.0.0.1:9"}])
    assert "AIAPI_ETH_XPUB is required" in refused(evm_chains=base)
    twice = json.dumps([{"network": "ethereum", "rpc_url": "http://127.0.0.1:9"}])
    assert "configured twice" in refused(evm_chains=twice, eth_rpc_url="http://127.0.0.1:9", **EVM)
    assert "AIAPI_TRON_ADDRESS_0 does not match" in refused(
        **{**TRON, "tron_address_0": tron_deposit_address(1)}
    )
    assert "AIAPI_TRON_ADDRESS_0 is not a TRON address" in refused(
        **{**TRON, "tron_address_0": ETH_ADDRESS_0}
    )
    assert "AIAPI_TRON_ADDRESS_0 is required" in refused(**{**TRON, "tron_address_0": ""})
    assert "AIAPI_TRON_USDT_CONTRACT" in refused(**TRON, tron_usdt_contract="0x" + "11" * 20)
    # An xpub of another coin gives other addresses: the check at 0/0 catches it.
    assert "AIAPI_TRON_ADDRESS_0 does not match" in refused(**{**TRON, "tron_xpub": ETH_XPUB})


def test_the_depeg_band_must_hold_the_peg_and_have_a_price_source() -> None:
    assert DepegBand.parse("0.98-1.02") == DepegBand(980_000_000, 1_020_000_000)
    assert DepegBand.parse("0.98-1.02").contains(1_020_000_000)
    assert not DepegBand.parse("0.98-1.02").contains(979_999_999)
    for bad in ("0.98", "1.01-1.02", "0-1.02", "a-b"):
        with pytest.raises(PolicyError):
            DepegBand.parse(bad)
    with pytest.raises(StartupRefused, match="needs price sources"):
        build_config(PaymentsSettings(price_sources="", depeg_band="0.98-1.02"))
    assert build_config(PaymentsSettings(depeg_band="0.98-1.02")).depeg_band is not None


def test_the_guard_pauses_without_a_fresh_price_and_logs_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    guard = DepegGuard(DepegBand.parse("0.99-1.01"), list(Asset), timedelta(minutes=2))
    fresh = [Quote("a", Asset.USDT, 1_000_000_000, now), Quote("a", Asset.USDC, 999_000_000, now)]
    assert guard.update(fresh, now) == frozenset()
    stale = [Quote("a", Asset.USDT, 1_000_000_000, now - timedelta(minutes=5))]
    assert guard.update(stale, now) == {Asset.USDT, Asset.USDC}  # an unverified peg waits
    assert guard.update(stale, now) == {Asset.USDT, Asset.USDC}
    assert guard.update(fresh, now) == frozenset()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ALERT" in m for m in messages) == 2  # one per token and change
    assert sum("crediting resumes" in m for m in messages) == 2
