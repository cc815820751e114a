"""The ledger's vocabulary: its system accounts, a transfer, a move of running totals. Pure: no I/O.

An account's row (``AccountRow``) is what the repository reads under the account's lock; a
``TransferSpec`` is one transfer between a customer and a system account, signed from the
customer's side; a ``TotalsMove`` is one account's share of a settled batch. The statements that
read and write them are in ``repository/accounts.py`` and ``repository/transfers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_billing.notices import Totals

REVENUE = "sys:revenue"
DEPOSITS = "sys:deposits"
ADJUSTMENTS = "sys:adjustments"
PLAN_SALES = "sys:plan_sales"


def customer(account_id: str) -> str:
    return f"cust:{account_id}"


@dataclass(frozen=True)
class AccountRow:
    account_id: str
    status: str
    plan: str
    known: bool
    totals: Totals
    rpm_tat_us: int
    tpm_tat_us: int


@dataclass(frozen=True)
class TransferSpec:
    key: str
    kind: str
    account_id: str
    amount: int  # signed, from the customer's side: positive credits the account
    counterpart: str
    reference: str
    memo: str = ""
    actor: str = "billing"

    def ends(self) -> tuple[str, str]:
        """(from, to): a credit flows from the counterpart to the customer, a debit back."""
        cust = customer(self.account_id)
        return (self.counterpart, cust) if self.amount > 0 else (cust, self.counterpart)


@dataclass(frozen=True)
class TotalsMove:
    """One account's share of a batch: what its running totals move by, all at once."""

    account_id: str
    debit: int = 0
    hold_delta: int = 0
    tpm_tat_delta_us: int = 0
