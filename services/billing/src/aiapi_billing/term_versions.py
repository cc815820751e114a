"""How an operator's change becomes a new version of a plan, a meter price or an account's
terms. Pure: no I/O.

A version starts at the moment the operator names, or now; never before now, because a request
already admitted is priced and limited by the versions in force when it started, and a version
that started earlier would change them. A plan's fields the operator leaves out keep the values
of the version in force at that moment.
"""

from __future__ import annotations

from datetime import datetime

from aiapi_shared import billing_api as api
from aiapi_shared.catalogue import AccountTerms, MeterPoint, Plan, latest_in_force

from aiapi_billing.errors import BillingError


def starting_moment(requested: datetime | None, now: datetime) -> datetime:
    """When a new version starts: ``requested`` if not in the past, else refused."""
    if requested is None:
        return now
    if requested < now:
        raise BillingError(
            "effective_from is in the past; a change starts now or later (omit it for now),"
            " so that no admitted request is re-priced"
        )
    return requested


def plan_version(versions: list[Plan], cmd: api.PutPlanCommand, now: datetime) -> Plan:
    """The plan version ``cmd`` describes, its blanks filled from the version in force then."""
    start = starting_moment(cmd.effective_from, now)
    base = latest_in_force(versions, start)
    given = cmd.model_dump(exclude={"id", "effective_from"}, exclude_none=True)
    if base is None:
        missing = sorted(
            {"price_usd", "requests_per_minute", "tokens_per_minute", "discount_bps"} - set(given)
        )
        if missing:
            raise BillingError(f"a new plan needs {', '.join(missing)}: {cmd.id}")
        given.setdefault("display_name", cmd.id.replace("-", " ").title())
        given.setdefault("choosable", False)  # a new plan is the operator's until offered
        return Plan(id=cmd.id, effective_from=start, **given)
    return base.model_copy(update={**given, "effective_from": start})


def meter_version(cmd: api.PutMeterPriceCommand, now: datetime) -> MeterPoint:
    return MeterPoint(
        effective_from=starting_moment(cmd.effective_from, now),
        usd_per_unit=cmd.usd_per_unit,
        input_bps=cmd.input_bps,
        output_bps=cmd.output_bps,
    )


def account_terms_version(
    versions: tuple[AccountTerms, ...], cmd: api.PutAccountTermsCommand, now: datetime
) -> AccountTerms:
    """The account's next version: what ``cmd`` sets (null: back to the plan's) over the version
    in force then; what it does not set is kept."""
    start = starting_moment(cmd.effective_from, now)
    base = latest_in_force(versions, start) or AccountTerms(effective_from=start)
    update: dict[str, object] = {"effective_from": start}
    if cmd.set_limits:
        update |= {
            "requests_per_minute": cmd.requests_per_minute,
            "tokens_per_minute": cmd.tokens_per_minute,
        }
    if cmd.set_discount:
        update["discount_bps"] = cmd.discount_bps
    return base.model_copy(update=update)
