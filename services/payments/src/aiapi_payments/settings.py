"""The payments service's settings (CONTRACT.md §3), read once in the composition root.

Unset `AIAPI_ETH_RPC_URL` turns Ethereum off (`AIAPI_EVM_CHAINS` adds other EVM networks),
unset `AIAPI_TRON_RPC_URL` turns TRON off, unset `AIAPI_BTC_ESPLORA_URL` turns BTC off. With all
off the service still runs and answers empty lists.
"""

from __future__ import annotations

from typing import ClassVar

from aiapi_shared.settings import BaseServiceSettings
from pydantic import Field

DEFAULT_USDT_CONTRACT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
DEFAULT_USDC_CONTRACT = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DEFAULT_TRON_USDT_CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TRON_MAINNET_CHAIN_ID = 728126428  # what a TRON mainnet node's eth_chainId reports (0x2b6653dc)


class PaymentsSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "payments"

    # Payments' only listener is the internal one (liveness, readiness, metrics): its API is NATS.
    internal_port: int = Field(default=9083, ge=0, le=65535)

    # Ethereum (ETH and the canonical USDT contract).
    eth_rpc_url: str | None = None
    eth_chain_id: int = 1
    eth_xpub: str | None = None
    eth_address_0: str | None = None
    usdt_contract: str = DEFAULT_USDT_CONTRACT
    # Empty: USDC on Ethereum off.
    usdc_contract: str = DEFAULT_USDC_CONTRACT
    eth_finality: str = "finalized"
    # Where a fresh cursor starts (a block number); unset: the head at first start.
    eth_start_block: int | None = None
    eth_batch_blocks: int = Field(default=100, ge=1, le=2000)
    eth_poll_interval_s: float = Field(default=4.0, gt=0)

    # More EVM networks: a JSON list, or the path of a file holding one (evm_networks.py).
    evm_chains: str = ""

    # TRON (TRC-20 USDT through the node's Ethereum-compatible JSON-RPC).
    tron_rpc_url: str | None = None
    tron_chain_id: int = TRON_MAINNET_CHAIN_ID
    tron_xpub: str | None = None
    tron_address_0: str | None = None
    tron_usdt_contract: str = DEFAULT_TRON_USDT_CONTRACT
    tron_confirmations: int = Field(default=20, ge=1)
    tron_start_block: int | None = None
    tron_poll_interval_s: float = Field(default=3.0, gt=0)

    # Bitcoin.
    btc_esplora_url: str | None = None
    btc_network: str = "mainnet"
    btc_xpub: str | None = None
    btc_address_0: str | None = None
    btc_confirmations: int = Field(default=2, ge=1)
    btc_confirmation_tiers: str = ""
    btc_poll_interval_s: float = Field(default=15.0, gt=0)

    # Pricing. `price_sources` unset: the built-in tickers; empty: manual rates only.
    min_deposit_usd: str = "1.00"
    # Per-asset minimums that replace `min_deposit_usd`, e.g. "BTC:20,ETH:5".
    min_deposit_by_asset: str = ""
    price_sources: str | None = None
    price_poll_interval_s: float = Field(default=30.0, gt=0)
    price_max_age_s: float = Field(default=120.0, gt=0)
    # The depeg guard: `LOW-HIGH` USD (e.g. "0.98-1.02"); empty: USDT/USDC always at the peg.
    depeg_band: str = ""

    # How often the outbox relay sweeps besides being woken after each commit.
    outbox_interval_s: float = Field(default=1.0, gt=0)

    @property
    def ethereum_enabled(self) -> bool:
        return bool(self.eth_rpc_url)

    @property
    def bitcoin_enabled(self) -> bool:
        return bool(self.btc_esplora_url)
