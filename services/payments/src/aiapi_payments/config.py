"""Validated configuration: settings in, keys and rules out, or a refusal to start. Pure.

Every check that needs no network runs here, before anything connects: the account keys'
format and depth, the address each gives at index 0 against the operator's expected one, the
finality rule, the minimums, the price sources. A refusal names the setting and the problem,
never a secret value (the keys module never repeats what it was given).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiapi_payments.addresses import (
    BitcoinNetwork,
    InvalidAddress,
    eth_address,
    is_checksum_valid,
    p2wpkh_address,
    p2wpkh_script,
    to_checksum_address,
)
from aiapi_payments.keys import ExtendedPublicKey, InvalidKey, ScriptKind, parse_extended_public_key
from aiapi_payments.keys import Network as KeyNetwork
from aiapi_payments.model import Asset, ChainNetwork
from aiapi_payments.policy import BtcConfirmationPolicy, EthFinality, PolicyError, parse_usd
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.tickers import PriceSource, PriceSourceError, parse_price_sources

ACCOUNT_DEPTH = 3  # m/purpose'/coin'/account'


class StartupRefused(RuntimeError):
    """The service must not start with these settings; the message says why (never a secret)."""


@dataclass(frozen=True)
class DerivedAddress:
    address: str
    script: str | None = None  # Bitcoin: the output script that pays the address


@dataclass(frozen=True)
class EthereumConfig:
    rpc_url: str
    chain_id: int
    account: ExtendedPublicKey
    token_contract: str
    finality: EthFinality
    start_block: int | None
    batch_blocks: int
    poll_interval_s: float

    def derive(self, index: int) -> DerivedAddress:
        return DerivedAddress(eth_address(self.account.deposit_key(index)))


@dataclass(frozen=True)
class BitcoinConfig:
    esplora_url: str
    network: BitcoinNetwork
    account: ExtendedPublicKey
    policy: BtcConfirmationPolicy
    poll_interval_s: float

    def derive(self, index: int) -> DerivedAddress:
        key = self.account.deposit_key(index)
        return DerivedAddress(p2wpkh_address(key, self.network), p2wpkh_script(key))


@dataclass(frozen=True)
class PaymentsConfig:
    ethereum: EthereumConfig | None
    bitcoin: BitcoinConfig | None
    minimums: dict[Asset, int]  # nano-USD
    price_sources: list[PriceSource]
    price_max_age: timedelta

    def minimum(self, asset: Asset) -> int:
        return self.minimums[asset]

    def derive(self, network: ChainNetwork, index: int) -> DerivedAddress:
        chain = self.ethereum if network is ChainNetwork.ETHEREUM else self.bitcoin
        if chain is None:
            raise StartupRefused(f"{network} deposits are off")
        return chain.derive(index)

    @property
    def networks(self) -> list[ChainNetwork]:
        on = [(ChainNetwork.ETHEREUM, self.ethereum), (ChainNetwork.BITCOIN, self.bitcoin)]
        return [network for network, chain in on if chain is not None]

    @property
    def assets(self) -> list[Asset]:
        """The enabled assets, in the order the API lists them."""
        return [
            asset for asset in (Asset.USDT, Asset.ETH, Asset.BTC) if asset.network in self.networks
        ]


def _account_key(
    setting: str, text: str | None, kinds: tuple[ScriptKind, ...]
) -> ExtendedPublicKey:
    if not text:
        raise StartupRefused(f"{setting} is required when its chain is enabled")
    try:
        key = parse_extended_public_key(text)
    except InvalidKey as error:
        raise StartupRefused(f"{setting}: {error}") from None
    if key.script_kind not in kinds:
        raise StartupRefused(f"{setting}: a {key.prefix} does not fit this chain's derivation")
    if key.depth != ACCOUNT_DEPTH:
        raise StartupRefused(
            f"{setting}: an account-level key (depth 3, m/purpose'/coin'/account') is needed; "
            f"this one has depth {key.depth}"
        )
    return key


def _ethereum(settings: PaymentsSettings) -> EthereumConfig | None:
    if not settings.eth_rpc_url:
        return None
    account = _account_key("AIAPI_ETH_XPUB", settings.eth_xpub, (ScriptKind.LEGACY,))
    expected = (settings.eth_address_0 or "").strip()
    if not expected:
        raise StartupRefused("AIAPI_ETH_ADDRESS_0 is required when Ethereum is enabled")
    if not is_checksum_valid(expected if expected.startswith("0x") else "0x" + expected):
        raise StartupRefused(
            "AIAPI_ETH_ADDRESS_0 is not an Ethereum address (or its checksum fails)"
        )
    derived = eth_address(account.deposit_key(0))
    if derived.lower() != "0x" + expected.lower().removeprefix("0x"):
        raise StartupRefused(
            f"AIAPI_ETH_ADDRESS_0 does not match the address AIAPI_ETH_XPUB gives at 0/0 "
            f"({derived}): is the key the account m/44'/60'/0' of the right wallet?"
        )
    try:
        token = to_checksum_address(settings.usdt_contract)
        finality = EthFinality.parse(settings.eth_finality)
    except (InvalidAddress, PolicyError) as error:
        raise StartupRefused(f"Ethereum settings: {error}") from None
    return EthereumConfig(
        rpc_url=settings.eth_rpc_url,
        chain_id=settings.eth_chain_id,
        account=account,
        token_contract=token,
        finality=finality,
        start_block=settings.eth_start_block,
        batch_blocks=settings.eth_batch_blocks,
        poll_interval_s=settings.eth_poll_interval_s,
    )


def _bitcoin(settings: PaymentsSettings) -> BitcoinConfig | None:
    if not settings.btc_esplora_url:
        return None
    try:
        network = BitcoinNetwork(settings.btc_network.strip().lower())
        policy = BtcConfirmationPolicy.parse(
            settings.btc_confirmations, settings.btc_confirmation_tiers
        )
    except (ValueError, PolicyError) as error:
        raise StartupRefused(f"Bitcoin settings: {error}") from None
    account = _account_key("AIAPI_BTC_XPUB", settings.btc_xpub, (ScriptKind.NATIVE_SEGWIT,))
    wanted = KeyNetwork.MAINNET if network is BitcoinNetwork.MAINNET else KeyNetwork.TESTNET
    if account.network is not wanted:
        raise StartupRefused(
            f"AIAPI_BTC_XPUB is a {account.network} key; AIAPI_BTC_NETWORK is {network}"
        )
    expected = (settings.btc_address_0 or "").strip().lower()
    if not expected:
        raise StartupRefused("AIAPI_BTC_ADDRESS_0 is required when Bitcoin is enabled")
    derived = p2wpkh_address(account.deposit_key(0), network)
    if derived != expected:
        raise StartupRefused(
            f"AIAPI_BTC_ADDRESS_0 does not match the address AIAPI_BTC_XPUB gives at 0/0 "
            f"({derived}): is the key the BIP84 account m/84'/0'/0' of the right wallet?"
        )
    return BitcoinConfig(
        esplora_url=settings.btc_esplora_url,
        network=network,
        account=account,
        policy=policy,
        poll_interval_s=settings.btc_poll_interval_s,
    )


def _minimums(settings: PaymentsSettings) -> dict[Asset, int]:
    try:
        default = parse_usd(settings.min_deposit_usd)
        minimums = dict.fromkeys(Asset, default)
        for item in filter(None, (p.strip() for p in settings.min_deposit_by_asset.split(","))):
            asset, _, usd = item.partition(":")
            minimums[Asset(asset.strip().upper())] = parse_usd(usd)
    except (ValueError, PolicyError) as error:
        raise StartupRefused(
            f"AIAPI_MIN_DEPOSIT_USD / AIAPI_MIN_DEPOSIT_BY_ASSET (e.g. BTC:20,ETH:5): {error}"
        ) from None
    return minimums


def build_config(settings: PaymentsSettings) -> PaymentsConfig:
    """Validate the settings; raises StartupRefused."""
    try:
        sources = parse_price_sources(settings.price_sources)
    except PriceSourceError as error:
        raise StartupRefused(f"AIAPI_PRICE_SOURCES: {error}") from None
    return PaymentsConfig(
        ethereum=_ethereum(settings),
        bitcoin=_bitcoin(settings),
        minimums=_minimums(settings),
        price_sources=sources,
        price_max_age=timedelta(seconds=settings.price_max_age_s),
    )
