"""The payments service's settings (CONTRACT.md §3), read once in the composition root.

Unset `AIAPI_ETH_RPC_URL` turns ETH and USDT deposits off; unset `AIAPI_BTC_ESPLORA_URL` turns
BTC off. With both off the service still runs and answers empty lists.
"""

from __future__ import annotations

from typing import ClassVar

from aiapi_shared.settings import BaseServiceSettings
from pydantic import Field

DEFAULT_USDT_CONTRACT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


class PaymentsSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "payments"

    payments_port: int = 8083

    # Ethereum (ETH and the canonical USDT contract).
    eth_rpc_url: str | None = None
    eth_chain_id: int = 1
    eth_xpub: str | None = None
    eth_address_0: str | None = None
    usdt_contract: str = DEFAULT_USDT_CONTRACT
    eth_finality: str = "finalized"
    # Where a fresh cursor starts (a block number); unset: the head at first start.
    eth_start_block: int | None = None
    eth_batch_blocks: int = Field(default=100, ge=1, le=2000)
    eth_poll_interval_s: float = Field(default=4.0, gt=0)

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

    # How often the outbox relay sweeps besides being woken after each commit.
    outbox_interval_s: float = Field(default=1.0, gt=0)

    @property
    def ethereum_enabled(self) -> bool:
        return bool(self.eth_rpc_url)

    @property
    def bitcoin_enabled(self) -> bool:
        return bool(self.btc_esplora_url)
