"""EVM networks as data: the built-in defaults and the parser of `AIAPI_EVM_CHAINS`. Pure.

An entry names a network and its JSON-RPC endpoint; for the networks below everything else has
a default (chain id, finality, explorer, the canonical USDT/USDC contracts), and an entry may
override any of it. Another network needs its chain id and tokens spelled out. The contract
addresses are the issuers' own deployments (sources in docs/payments.md): Circle's native USDC,
and Tether's USDT (USD₮0 on Arbitrum and Optimism). Base has no USDT from Tether, so none by
default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiapi_payments.addresses import InvalidAddress, to_checksum_address
from aiapi_payments.model import Asset, ChainNetwork
from aiapi_payments.policy import EthFinality, PolicyError


class NetworkSettingError(ValueError):
    """AIAPI_EVM_CHAINS is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class TokenSpec:
    asset: Asset
    contract: str  # EIP-55
    decimals: int = 6


@dataclass(frozen=True)
class NetworkSpec:
    network: ChainNetwork
    chain_id: int
    rpc_url: str = ""
    finality: EthFinality = field(default_factory=EthFinality)
    explorer_url: str | None = None
    tokens: tuple[TokenSpec, ...] = ()
    native: Asset | None = None  # the chain's own coin credits too (full blocks are read)
    start_block: int | None = None
    batch_blocks: int | None = None
    poll_interval_s: float | None = None
    gas_coin: str = "ETH"  # the coin that pays fees (named in the sweep plan)


def _tokens(**contracts: str) -> tuple[TokenSpec, ...]:
    return tuple(TokenSpec(Asset(symbol), address) for symbol, address in contracts.items())


KNOWN_NETWORKS: dict[str, NetworkSpec] = {
    spec.network: spec
    for spec in (
        NetworkSpec(
            ChainNetwork("ethereum"),
            1,
            explorer_url="https://etherscan.io",
            tokens=_tokens(
                USDT="0xdAC17F958D2ee523a2206206994597C13D831ec7",
                USDC="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
            ),
            native=Asset.ETH,
        ),
        NetworkSpec(
            ChainNetwork("arbitrum"),
            42161,
            explorer_url="https://arbiscan.io",
            tokens=_tokens(
                USDT="0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9",
                USDC="0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
            ),
        ),
        NetworkSpec(
            ChainNetwork("base"),
            8453,
            explorer_url="https://basescan.org",
            tokens=_tokens(USDC="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
        ),
        NetworkSpec(
            ChainNetwork("optimism"),
            10,
            explorer_url="https://optimistic.etherscan.io",
            tokens=_tokens(
                USDT="0x94b008aA00579c1307B0EF2c499aD98a8ce58e58",
                USDC="0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85",
            ),
        ),
        NetworkSpec(
            ChainNetwork("polygon"),
            137,
            explorer_url="https://polygonscan.com",
            gas_coin="POL",
            tokens=_tokens(
                USDT="0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
                USDC="0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
            ),
        ),
    )
}

_ENTRY_FIELDS = {
    "network",
    "name",
    "chain_id",
    "rpc_url",
    "finality",
    "explorer_url",
    "tokens",
    "native",
    "start_block",
    "batch_blocks",
    "poll_interval_s",
    "gas_coin",
}
_RESERVED = {"bitcoin", "tron"}


def _int(entry: Mapping[str, Any], name: str, where: str, minimum: int) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise NetworkSettingError(f"{where}: {name} is an integer >= {minimum}")
    return value


def _token(symbol: str, value: Any, where: str) -> TokenSpec:
    try:
        asset = Asset(str(symbol).upper())
    except ValueError:
        asset = None
    if asset is None or not asset.pegged:
        raise NetworkSettingError(f"{where}: tokens are USDT or USDC (USD stablecoins)")
    if isinstance(value, str):
        value = {"contract": value}
    if not isinstance(value, dict) or not isinstance(value.get("contract"), str):
        raise NetworkSettingError(f"{where}: token {asset} needs a contract address")
    unknown = set(value) - {"symbol", "contract", "decimals", "peg"}
    if unknown:
        raise NetworkSettingError(f"{where}: token {asset}: unknown fields {sorted(unknown)}")
    if value.get("peg", "USD") != "USD":
        raise NetworkSettingError(f"{where}: token {asset}: the only peg is USD")
    decimals = value.get("decimals", 6)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 36:
        raise NetworkSettingError(f"{where}: token {asset}: decimals is 0..36")
    try:
        contract = to_checksum_address(value["contract"])
    except InvalidAddress:
        raise NetworkSettingError(f"{where}: token {asset}: not a 20-byte hex address") from None
    return TokenSpec(asset, contract, decimals)


def _entry(entry: Any, position: int) -> NetworkSpec:
    if not isinstance(entry, dict):
        raise NetworkSettingError(f"entry {position}: an object is expected")
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise NetworkSettingError(f"entry {position}: unknown fields {sorted(unknown)}")
    name = entry.get("network", entry.get("name"))
    try:
        network = ChainNetwork(str(name))
    except ValueError as error:
        raise NetworkSettingError(f"entry {position}: network: {error}") from None
    where = f"network {network}"
    if network in _RESERVED:
        raise NetworkSettingError(f"{where}: not an EVM network (it has its own settings)")
    known = KNOWN_NETWORKS.get(network)
    rpc_url = entry.get("rpc_url")
    if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
        raise NetworkSettingError(f"{where}: rpc_url (http or https) is required")
    chain_id = _int(entry, "chain_id", where, 1) or (known.chain_id if known else None)
    if chain_id is None:
        raise NetworkSettingError(f"{where}: chain_id is required for a network not built in")
    try:
        finality = (
            EthFinality.parse(entry["finality"], f"{where}: finality")
            if "finality" in entry
            else (known.finality if known else EthFinality())
        )
    except PolicyError as error:
        raise NetworkSettingError(str(error)) from None
    tokens_value = entry.get("tokens")
    if tokens_value is None:
        if known is None:
            raise NetworkSettingError(f"{where}: tokens are required for a network not built in")
        tokens = known.tokens
    elif isinstance(tokens_value, dict):
        tokens = tuple(_token(symbol, value, where) for symbol, value in tokens_value.items())
    elif isinstance(tokens_value, list):
        tokens = tuple(
            _token(item.get("symbol", "") if isinstance(item, dict) else "", item, where)
            for item in tokens_value
        )
    else:
        raise NetworkSettingError(f"{where}: tokens is an object {{SYMBOL: contract}} or a list")
    if len({token.asset for token in tokens}) != len(tokens):
        raise NetworkSettingError(f"{where}: one contract per token symbol")
    native = entry.get("native", known.native.value if known and known.native else None)
    if native not in (None, "ETH"):
        raise NetworkSettingError(f"{where}: native is ETH or null (other coins have no price)")
    if not tokens and native is None:
        raise NetworkSettingError(f"{where}: nothing would credit (no tokens, no native coin)")
    explorer = entry.get("explorer_url", known.explorer_url if known else None)
    poll = entry.get("poll_interval_s")
    if poll is not None and (not isinstance(poll, int | float) or poll <= 0):
        raise NetworkSettingError(f"{where}: poll_interval_s is a positive number")
    gas_coin = entry.get("gas_coin", known.gas_coin if known else "ETH")
    if not isinstance(gas_coin, str) or not gas_coin.isalnum() or len(gas_coin) > 12:
        raise NetworkSettingError(f"{where}: gas_coin is a coin symbol such as ETH")
    return NetworkSpec(
        gas_coin=gas_coin.upper(),
        network=network,
        chain_id=chain_id,
        rpc_url=rpc_url,
        finality=finality,
        explorer_url=explorer if isinstance(explorer, str) else None,
        tokens=tokens,
        native=Asset.ETH if native == "ETH" else None,
        start_block=_int(entry, "start_block", where, 0),
        batch_blocks=_int(entry, "batch_blocks", where, 1),
        poll_interval_s=float(poll) if poll is not None else None,
    )


def parse_evm_chains(text: str) -> list[NetworkSpec]:
    """The networks of an `AIAPI_EVM_CHAINS` JSON document (a list of objects)."""
    text = text.strip()
    if not text:
        return []
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise NetworkSettingError(f"not JSON (line {error.lineno}): {error.msg}") from None
    if not isinstance(document, list):
        raise NetworkSettingError("a JSON list of network objects is expected")
    specs = [_entry(entry, position) for position, entry in enumerate(document)]
    names = [spec.network for spec in specs]
    if len(set(names)) != len(names):
        raise NetworkSettingError("a network is listed twice")
    chain_ids = [spec.chain_id for spec in specs]
    if len(set(chain_ids)) != len(chain_ids):
        raise NetworkSettingError("two networks share a chain id")
    return specs
