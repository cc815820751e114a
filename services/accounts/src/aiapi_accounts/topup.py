"""What the top-up page and ``GET /api/v1/account/top-up`` show: the account's deposit addresses
with their payment URIs, minimums, confirmation rules and rates, and its deposits with their
progress. Reads payments over NATS (I/O); the wording and URIs come from pure modules."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Literal

from aiapi_shared.money import Money
from pydantic import Field

from aiapi_accounts.context import Context
from aiapi_accounts.deposit_progress import explorer_url, progress
from aiapi_accounts.payment_uri import payment_uri
from aiapi_accounts.schemas import Answer


class TopUpAsset(Answer):
    asset: str
    network: str
    address: str
    payment_uri: str | None = Field(description="BIP21 (BTC) or EIP-681 (ETH, ERC-20) URI")
    minimum_usd: Money | None = Field(description="smaller deposits are recorded, not credited")
    confirmations: int | None = Field(
        description="blocks before a deposit credits; null when the finalized tag decides"
    )
    finality: Literal["finalized", "confirmations"] | None
    rate_usd: Money | None = Field(description="USD per whole coin now; null while unknown")
    rate_source: str | None


class TopUpDeposit(Answer):
    asset: str
    network: str
    tx_hash: str
    position: int
    amount: str = Field(description="in the asset's unit, exact")
    usd: Money | None = Field(description="credited value; null until priced")
    state: str
    confirmations: int
    confirmations_required: int | None
    progress: str = Field(description="the state in words, e.g. 'confirming 2/3'")
    explorer_url: str | None
    first_seen_at: datetime | None


class TopUpAnswer(Answer):
    assets: list[TopUpAsset]
    deposits: list[TopUpDeposit]


class TopUpDepositsAnswer(Answer):
    deposits: list[TopUpDeposit]


async def top_up_view(ctx: Context, account_id: str) -> TopUpAnswer:
    """Addresses through the address book (payments asked a few times an hour, the answer
    remembered in between: a remembered address comes without its minimum, rate and URI),
    deposits from payments."""
    # Independent questions to payments: asked at once. The addresses' refusal (an unverified
    # email, the budget) is the one to answer with when both fail.
    addresses, deposits = await asyncio.gather(
        ctx.addresses.addresses(account_id), deposits_view(ctx, account_id), return_exceptions=True
    )
    if isinstance(addresses, BaseException):
        raise addresses
    if isinstance(deposits, BaseException):
        raise deposits
    return TopUpAnswer(
        assets=[
            TopUpAsset(
                asset=a.asset,
                network=a.network,
                address=a.address,
                payment_uri=payment_uri(a),
                minimum_usd=a.minimum_usd,
                confirmations=a.confirmations,
                finality=a.finality,
                rate_usd=a.rate_usd,
                rate_source=a.rate_source,
            )
            for a in addresses
        ],
        deposits=deposits,
    )


async def deposits_view(ctx: Context, account_id: str) -> list[TopUpDeposit]:
    """The account's deposits with their progress in words (what the top-up page polls)."""
    deposits = await ctx.peers.deposits(account_id)
    explorers = ctx.settings.explorer_tx_urls
    return [
        TopUpDeposit(
            asset=d.asset,
            network=d.network,
            tx_hash=d.tx_hash,
            position=d.position,
            amount=d.amount,
            usd=d.usd,
            state=d.state,
            confirmations=d.confirmations,
            confirmations_required=d.confirmations_required,
            progress=progress(d),
            explorer_url=explorer_url(explorers, d.network, d.tx_hash),
            first_seen_at=d.first_seen_at,
        )
        for d in deposits
    ]
