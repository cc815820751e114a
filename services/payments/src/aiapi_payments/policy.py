"""Chain policy: when a deposit is final, what it is worth, which state it is in.

Pure: integers in, integers out; no I/O, no clock, never a float.

States (CONTRACT.md §3):

    detected ──final, priced, >= minimum──► confirmed ──published──► credited
       │  ▲                                     │                       │
       │  └──re-included──┐                     └────gone from chain────┴──► reversed
       ├──gone────────► orphaned
       └──priced, < minimum──► below_minimum ──gone──► orphaned

A deposit is "gone" when the best chain no longer holds it: a reorg removed its block and it is
not back in a block, or (Bitcoin) a replacement took its place in the mempool. Gone before it
was confirmed is `orphaned` (it may come back: re-inclusion makes it `detected` again, with the
same key). Gone after it was confirmed is `reversed`: finality was broken, billing gets a
compensating event and the operator an alert; it stays reversed (an operator decides).
A final deposit with no rate yet stays `detected`: it waits for a rate, never a guessed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_payments.model import DepositState

NANO_PER_USD = 10**9
USDT_RATE = NANO_PER_USD  # USDT counts as 1 USD


class PolicyError(ValueError):
    pass


def parse_usd(text: str) -> int:
    """A decimal USD string ("1.00", "3000", "0.000000001") as integer nano-USD, exactly."""
    text = text.strip()
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or not (fraction == "" or fraction.isdigit()) or len(fraction) > 9:
        raise PolicyError("a USD amount is plain digits with at most 9 decimals")
    return int(whole) * NANO_PER_USD + int(fraction.ljust(9, "0"))


def format_units(amount: int, decimals: int) -> str:
    """Base units as a plain decimal string in the whole unit: 25_500_000 (6) -> "25.5"."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), int(10**decimals))
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def usd_value(amount: int, decimals: int, rate_nano_usd: int) -> int:
    """Nano-USD value of `amount` base units (`decimals` to the coin) at `rate_nano_usd` per
    whole coin, rounded down."""
    if amount < 0 or rate_nano_usd < 0 or decimals < 0:
        raise PolicyError("amounts, decimals and rates are not negative")
    return amount * rate_nano_usd // int(10**decimals)


def confirmations(block_number: int | None, head: int) -> int:
    """0 in the mempool, 1 in the block that includes it (CONTRACT.md)."""
    if block_number is None or block_number > head:
        return 0
    return head - block_number + 1


@dataclass(frozen=True)
class EthFinality:
    """When a block of an EVM-style chain is final: at or below the node's `finalized` tag,
    after a number of confirmations, or both (TRON: N confirmations and solidified, which its
    JSON-RPC reports as `finalized`)."""

    confirmations: int | None = None
    tag: bool = True  # the node's `finalized` block must have reached it

    @classmethod
    def parse(cls, text: str | int, setting: str = "AIAPI_ETH_FINALITY") -> EthFinality:
        text = str(text).strip().lower()
        if text == "finalized":
            return cls()
        if text.isdigit() and int(text) >= 1:
            return cls(int(text), tag=False)
        raise PolicyError(f"{setting} is `finalized` or a number of confirmations >= 1")

    def is_final(self, block_number: int | None, head: int, finalized: int | None) -> bool:
        if block_number is None:
            return False
        if self.tag and (finalized is None or block_number > finalized):
            return False
        return self.confirmations is None or confirmations(block_number, head) >= self.confirmations

    def required(self, head: int, finalized: int | None) -> int | None:
        """Confirmations a deposit needs, as the customer sees progress. With the tag it is the
        node's current distance to `finalized` (it moves with the chain); None when unknown."""
        needed = self.confirmations or 0
        if self.tag:
            if finalized is None or finalized > head:
                return None
            needed = max(needed, head - finalized + 1)
        return needed


@dataclass(frozen=True)
class DepegBand:
    """The USD prices (nano-USD per token) inside which a stablecoin credits at its peg."""

    low_nano: int
    high_nano: int

    @classmethod
    def parse(cls, text: str) -> DepegBand:
        """`LOW-HIGH` in USD, e.g. `0.98-1.02`."""
        low, dash, high = text.strip().partition("-")
        if not dash:
            raise PolicyError("AIAPI_DEPEG_BAND is LOW-HIGH in USD, e.g. 0.98-1.02")
        band = cls(parse_usd(low), parse_usd(high))
        if not 0 < band.low_nano <= NANO_PER_USD <= band.high_nano:
            raise PolicyError("AIAPI_DEPEG_BAND must hold 1.00 (e.g. 0.98-1.02)")
        return band

    def contains(self, rate_nano_usd: int) -> bool:
        return self.low_nano <= rate_nano_usd <= self.high_nano


@dataclass(frozen=True)
class ConfirmationTier:
    min_usd_nano: int
    confirmations: int


@dataclass(frozen=True)
class BtcConfirmationPolicy:
    """Confirmations a BTC deposit needs, growing with its USD value.

    `tiers` raise the default for deposits of at least their threshold. A deposit with no rate
    yet is held to the strictest requirement (it cannot credit before it is priced anyway).
    """

    default: int = 2
    tiers: tuple[ConfirmationTier, ...] = ()

    @classmethod
    def parse(cls, default: int, tiers: str) -> BtcConfirmationPolicy:
        """`tiers` as "USD:confirmations" pairs, e.g. "1000:3,10000:6"."""
        parsed: list[ConfirmationTier] = []
        for item in filter(None, (part.strip() for part in tiers.split(","))):
            usd, _, count = item.partition(":")
            if not count.strip().isdigit():
                raise PolicyError("a confirmation tier is USD:confirmations, e.g. 1000:3")
            parsed.append(ConfirmationTier(parse_usd(usd), int(count)))
        if default < 1:
            raise PolicyError("AIAPI_BTC_CONFIRMATIONS is at least 1")
        return cls(default, tuple(sorted(parsed, key=lambda tier: tier.min_usd_nano)))

    def required(self, usd_nano: int | None) -> int:
        applicable = [
            tier.confirmations
            for tier in self.tiers
            if usd_nano is None or usd_nano >= tier.min_usd_nano
        ]
        return max([self.default, *applicable])

    def is_final(self, block_number: int | None, head: int, usd_nano: int | None) -> bool:
        return block_number is not None and confirmations(block_number, head) >= self.required(
            usd_nano
        )


def next_state(
    previous: DepositState | None,
    *,
    on_chain: bool,
    in_block: bool,
    final: bool,
    usd_nano: int | None,
    minimum_nano: int,
) -> DepositState:
    """The state a deposit moves to given what the chain says now.

    `on_chain`: the best chain holds the transaction (mempool or block); `in_block`: in a block
    of the best chain; `final`: that block meets the finality rule.
    """
    if previous in (DepositState.CONFIRMED, DepositState.CREDITED):
        return previous if in_block else DepositState.REVERSED
    if previous is DepositState.REVERSED:
        return previous
    if not on_chain:
        return DepositState.ORPHANED
    if usd_nano is not None and usd_nano < minimum_nano:
        return DepositState.BELOW_MINIMUM
    if final and usd_nano is not None:
        return DepositState.CONFIRMED
    return DepositState.DETECTED


def mark_credited(previous: DepositState) -> DepositState:
    """After the confirmed event left through the outbox; only a confirmed deposit credits."""
    if previous is not DepositState.CONFIRMED:
        raise PolicyError(f"a {previous} deposit cannot be credited")
    return DepositState.CREDITED
