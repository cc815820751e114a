"""Validated configuration: settings in, keys and rules out, or a refusal to start. Pure but
for reading the AIAPI_EVM_CHAINS file when the setting names one (an injectable reader).

Every check that needs no network runs here, before anything connects: the account keys'
format and depth, the address each gives at index 0 against the operator's expected one, the
finality rule, the minimums, the price sources. A refusal names the setting and the problem,
never a secret value (the keys module never repeats what it was given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiapi_shared.lifecycle import StartupRefused

from aiapi_payments.addresses import (
    BitcoinNetwork,
    InvalidAddress,
    eth_address,
    is_checksum_valid,
    p2wpkh_address,
    p2wpkh_script,
    to_checksum_address,
    tron_address,
    tron_from_hex,
    tron_to_hex,
)
from aiapi_payments.evm_networks import (
    KNOWN_NETWORKS,
    NetworkSettingError,
    NetworkSpec,
    parse_evm_chains,
)
from aiapi_payments.keys import ExtendedPublicKey, InvalidKey, ScriptKind, parse_extended_public_key
from aiapi_payments.keys import Network as KeyNetwork
from aiapi_payments.model import Asset, ChainNetwork, KeyChain
from aiapi_payments.policy import (
    BtcConfirmationPolicy,
    DepegBand,
    EthFinality,
    PolicyError,
    parse_usd,
)
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.tickers import PriceSource, PriceSourceError, parse_price_sources

ACCOUNT_DEPTH = 3  # m/purpose'/coin'/account'


@dataclass(frozen=True)
class DerivedAddress:
    address: str
    script: str | None = None  # Bitcoin: the output script that pays the address


@dataclass(frozen=True)
class Token:
    """A token that credits on a network: only its canonical contract (a lookalike with the
    same symbol at another address never credits)."""

    asset: Asset
    contract: str  # EIP-55 hex, as the node's JSON-RPC writes it (TRON too)
    decimals: int
    shown: str  # as the network's explorer writes it (TRON: base58 `T...`)


@dataclass(frozen=True)
class EvmChainConfig:
    """One network followed over an Ethereum-style JSON-RPC: Ethereum, another EVM network of
    AIAPI_EVM_CHAINS, or TRON (its node's Ethereum-compatible JSON-RPC)."""

    network: ChainNetwork
    keychain: KeyChain  # EVM: the coin-60 key, one address on every EVM network; or TRON
    rpc_url: str
    chain_id: int
    chain_id_setting: str  # named when the node reports another chain
    account: ExtendedPublicKey
    tokens: tuple[Token, ...]
    native: Asset | None  # the network's own coin credits too (ETH on Ethereum)
    finality: EthFinality
    explorer_url: str | None
    start_block: int | None
    batch_blocks: int
    poll_interval_s: float
    gas_coin: str = "ETH"  # pays the fees of a sweep (TRON: TRX)
    gas_decimals: int = 18

    def derive(self, index: int) -> DerivedAddress:
        key = self.account.deposit_key(index)
        if self.keychain is KeyChain.TRON:
            return DerivedAddress(tron_address(key))
        return DerivedAddress(eth_address(key))

    @property
    def token_contract(self) -> str:
        """The first token's contract (the USDT of the Ethereum settings)."""
        return self.tokens[0].contract

    def to_node(self, address: str) -> str:
        """A stored deposit address in the form the node's JSON-RPC uses (0x hex)."""
        return tron_to_hex(address) if self.keychain is KeyChain.TRON else address

    def shown_address(self, node_address: str) -> str:
        return (
            tron_from_hex(node_address)
            if self.keychain is KeyChain.TRON
            else to_checksum_address(node_address)
        )

    def shown_tx_hash(self, node_hash: str) -> str:
        """TRON transaction ids are written without 0x (as TRONSCAN shows them)."""
        return node_hash.removeprefix("0x") if self.keychain is KeyChain.TRON else node_hash

    def decimals(self, asset: Asset) -> int:
        return next((t.decimals for t in self.tokens if t.asset is asset), asset.decimals)

    @property
    def assets(self) -> list[Asset]:
        tokens = [token.asset for token in self.tokens]
        return tokens + ([self.native] if self.native else [])


EthereumConfig = EvmChainConfig  # the name before networks became data


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
    evm: tuple[EvmChainConfig, ...]  # Ethereum first, then AIAPI_EVM_CHAINS, then TRON
    bitcoin: BitcoinConfig | None
    minimums: dict[Asset, int]  # nano-USD
    price_sources: list[PriceSource]
    price_max_age: timedelta
    depeg_band: DepegBand | None = None  # None: stablecoins always credit at the peg

    def minimum(self, asset: Asset) -> int:
        return self.minimums[asset]

    @property
    def ethereum(self) -> EvmChainConfig | None:
        return self.chain(ChainNetwork.ETHEREUM)

    @property
    def tron(self) -> EvmChainConfig | None:
        return self.chain(ChainNetwork.TRON)

    def chain(self, network: str) -> EvmChainConfig | None:
        return next((chain for chain in self.evm if chain.network == network), None)

    def keychain(self, network: str) -> KeyChain:
        if network == ChainNetwork.BITCOIN:
            return KeyChain.BITCOIN
        chain = self.chain(network)
        if chain is None:
            raise StartupRefused(f"{network} deposits are off")
        return chain.keychain

    def derive_from(self, keychain: KeyChain, index: int) -> DerivedAddress:
        """The address `0/index` of an account key (every EVM network shares the EVM one)."""
        if keychain is KeyChain.BITCOIN:
            if self.bitcoin is None:
                raise StartupRefused("bitcoin deposits are off")
            return self.bitcoin.derive(index)
        chain = next((c for c in self.evm if c.keychain is keychain), None)
        if chain is None:
            raise StartupRefused(f"{keychain} deposits are off")
        return chain.derive(index)

    def derive(self, network: str, index: int) -> DerivedAddress:
        return self.derive_from(self.keychain(network), index)

    def decimals(self, network: str, asset: Asset) -> int:
        chain = self.chain(network)
        return asset.decimals if chain is None else chain.decimals(asset)

    @property
    def networks(self) -> list[ChainNetwork]:
        on = [chain.network for chain in self.evm]
        return on + ([ChainNetwork.BITCOIN] if self.bitcoin else [])

    @property
    def offers(self) -> list[tuple[Asset, ChainNetwork]]:
        """Every (asset, network) a customer may pay with, in the order the API lists them."""
        pairs = [(asset, chain.network) for chain in self.evm for asset in chain.assets]
        return pairs + ([(Asset.BTC, ChainNetwork.BITCOIN)] if self.bitcoin else [])

    @property
    def assets(self) -> list[Asset]:
        """The enabled assets, each once, in the order the API lists them."""
        return list(dict.fromkeys(asset for asset, _ in self.offers))


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


def _eth_account(settings: PaymentsSettings) -> ExtendedPublicKey:
    """The coin-60 account key, checked against AIAPI_ETH_ADDRESS_0 (every EVM network)."""
    account = _account_key("AIAPI_ETH_XPUB", settings.eth_xpub, (ScriptKind.LEGACY,))
    expected = (settings.eth_address_0 or "").strip()
    if not expected:
        raise StartupRefused("AIAPI_ETH_ADDRESS_0 is required when an EVM network is enabled")
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
    return account


def _ethereum(settings: PaymentsSettings, account: ExtendedPublicKey) -> EvmChainConfig:
    """The `ethereum` network of the AIAPI_ETH_* settings (as before networks became data)."""
    try:
        contracts = [(Asset.USDT, settings.usdt_contract), (Asset.USDC, settings.usdc_contract)]
        tokens = [
            Token(asset, checked, 6, checked)
            for asset, text in contracts
            if text.strip()
            for checked in (to_checksum_address(text),)
        ]
        finality = EthFinality.parse(settings.eth_finality)
    except (InvalidAddress, PolicyError) as error:
        raise StartupRefused(f"Ethereum settings: {error}") from None
    assert settings.eth_rpc_url is not None
    return EvmChainConfig(
        network=ChainNetwork.ETHEREUM,
        keychain=KeyChain.EVM,
        rpc_url=settings.eth_rpc_url,
        chain_id=settings.eth_chain_id,
        chain_id_setting="AIAPI_ETH_CHAIN_ID",
        account=account,
        tokens=tuple(tokens),
        native=Asset.ETH,
        finality=finality,
        explorer_url=KNOWN_NETWORKS[ChainNetwork.ETHEREUM].explorer_url,
        start_block=settings.eth_start_block,
        batch_blocks=settings.eth_batch_blocks,
        poll_interval_s=settings.eth_poll_interval_s,
    )


def _evm_chain(
    spec: NetworkSpec, settings: PaymentsSettings, account: ExtendedPublicKey
) -> EvmChainConfig:
    return EvmChainConfig(
        network=spec.network,
        keychain=KeyChain.EVM,
        rpc_url=spec.rpc_url,
        chain_id=spec.chain_id,
        chain_id_setting=f"AIAPI_EVM_CHAINS ({spec.network}: chain_id)",
        account=account,
        tokens=tuple(Token(t.asset, t.contract, t.decimals, t.contract) for t in spec.tokens),
        native=spec.native,
        finality=spec.finality,
        explorer_url=spec.explorer_url,
        start_block=spec.start_block,
        batch_blocks=spec.batch_blocks or settings.eth_batch_blocks,
        poll_interval_s=spec.poll_interval_s or settings.eth_poll_interval_s,
        gas_coin=spec.gas_coin,
    )


def _read_text(path: str) -> str:
    return Path(path).read_text("utf-8")


def _evm_chains(
    settings: PaymentsSettings, read_file: Callable[[str], str]
) -> tuple[EvmChainConfig, ...]:
    document = settings.evm_chains.strip()
    if document and not document.startswith("["):
        try:
            document = read_file(document)
        except OSError as error:
            raise StartupRefused(
                f"AIAPI_EVM_CHAINS names a file that cannot be read ({type(error).__name__})"
            ) from None
    try:
        specs = parse_evm_chains(document)
    except NetworkSettingError as error:
        raise StartupRefused(f"AIAPI_EVM_CHAINS: {error}") from None
    if not specs and not settings.eth_rpc_url:
        return ()
    if settings.eth_rpc_url and any(spec.network == ChainNetwork.ETHEREUM for spec in specs):
        raise StartupRefused(
            "ethereum is configured twice: by AIAPI_ETH_RPC_URL and in AIAPI_EVM_CHAINS"
        )
    account = _eth_account(settings)
    chains = [_ethereum(settings, account)] if settings.eth_rpc_url else []
    chains += [_evm_chain(spec, settings, account) for spec in specs]
    ids = [chain.chain_id for chain in chains]
    if len(set(ids)) != len(ids):
        raise StartupRefused(
            "two EVM networks share a chain id (AIAPI_ETH_CHAIN_ID, AIAPI_EVM_CHAINS)"
        )
    ordered = sorted(chains, key=lambda chain: chain.network != ChainNetwork.ETHEREUM)
    return tuple(ordered)


def _tron(settings: PaymentsSettings) -> EvmChainConfig | None:
    if not settings.tron_rpc_url:
        return None
    account = _account_key("AIAPI_TRON_XPUB", settings.tron_xpub, (ScriptKind.LEGACY,))
    expected = (settings.tron_address_0 or "").strip()
    if not expected:
        raise StartupRefused("AIAPI_TRON_ADDRESS_0 is required when TRON is enabled")
    try:
        tron_to_hex(expected)
    except InvalidAddress:
        raise StartupRefused(
            "AIAPI_TRON_ADDRESS_0 is not a TRON address (T..., base58check)"
        ) from None
    derived = tron_address(account.deposit_key(0))
    if derived != expected:
        raise StartupRefused(
            f"AIAPI_TRON_ADDRESS_0 does not match the address AIAPI_TRON_XPUB gives at 0/0 "
            f"({derived}): is the key the account m/44'/195'/0' of the right wallet?"
        )
    try:
        usdt = settings.tron_usdt_contract.strip()
        token = Token(Asset.USDT, tron_to_hex(usdt), 6, usdt)
    except InvalidAddress as error:
        raise StartupRefused(f"AIAPI_TRON_USDT_CONTRACT: {error}") from None
    return EvmChainConfig(
        network=ChainNetwork.TRON,
        keychain=KeyChain.TRON,
        rpc_url=settings.tron_rpc_url,
        chain_id=settings.tron_chain_id,
        chain_id_setting="AIAPI_TRON_CHAIN_ID",
        account=account,
        tokens=(token,),
        native=None,
        # Solidified: the node's `finalized` tag, and at least the configured depth.
        finality=EthFinality(settings.tron_confirmations, tag=True),
        explorer_url="https://tronscan.org",
        start_block=settings.tron_start_block,
        batch_blocks=settings.eth_batch_blocks,
        poll_interval_s=settings.tron_poll_interval_s,
        gas_coin="TRX",
        gas_decimals=6,  # sun
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


def build_config(
    settings: PaymentsSettings, read_file: Callable[[str], str] = _read_text
) -> PaymentsConfig:
    """Validate the settings; raises StartupRefused. `read_file` reads an AIAPI_EVM_CHAINS
    given as a path (the one read this module does)."""
    try:
        sources = parse_price_sources(settings.price_sources)
    except PriceSourceError as error:
        raise StartupRefused(f"AIAPI_PRICE_SOURCES: {error}") from None
    tron = _tron(settings)
    band = None
    if settings.depeg_band.strip():
        try:
            band = DepegBand.parse(settings.depeg_band)
        except PolicyError as error:
            raise StartupRefused(str(error)) from None
        if not sources:
            raise StartupRefused("AIAPI_DEPEG_BAND needs price sources (AIAPI_PRICE_SOURCES)")
    return PaymentsConfig(
        depeg_band=band,
        evm=_evm_chains(settings, read_file) + ((tron,) if tron else ()),
        bitcoin=_bitcoin(settings),
        minimums=_minimums(settings),
        price_sources=sources,
        price_max_age=timedelta(seconds=settings.price_max_age_s),
    )
