"""The model catalogue and plans as data (``catalogue.json``), loaded into frozen models.

This is what a fresh installation sells. Billing seeds its tables from it; an operator adds
models, aliases, prices, meter prices and plans at run time through billing, which publishes the
live catalogue to the edge. Prices are USD per million tokens with effective dates; plans, meter
prices and an account's own terms are effective-dated the same way: a request is priced and
limited by the versions in force when it started (:meth:`Catalogue.terms`), so a change never
reaches back to a request already admitted.

A requested model id is served as (:meth:`Catalogue.model`): a sold model of that id; else the
target of an alias of exactly that id; else, for an id ending in ``-latest``, the same without
the suffix; else the target of the most specific alias *pattern* it matches. An alias whose name
holds ``*`` or ``?`` is a pattern (shell-style: ``claude-sonnet-4-6-*`` matches every dated
snapshot of it); the most specific is the one with the longest text before its first wildcard
(ties: the longer pattern, then the lexically first).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache, cached_property
from importlib import resources
from typing import Annotated, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aiapi_shared.money import Money


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelTraits(_Frozen):
    adaptive_thinking: bool = False
    effort: bool = False
    rejects_sampling_params: bool = False


class PricePoint(_Frozen):
    effective_from: datetime
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money


class ModelEntry(_Frozen):
    id: str
    display_name: str
    created_at: datetime
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    traits: ModelTraits = ModelTraits()
    prices: tuple[PricePoint, ...]

    def price_at(self, moment: datetime) -> PricePoint | None:
        """The price in force at ``moment``: the latest one whose start is not after it."""
        return latest_in_force(self.prices, moment)


PLAN_ID_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
PlanId = Annotated[str, StringConstraints(pattern=PLAN_ID_PATTERN)]
"""A plan's name: lower-case letters, digits and dashes, starting with a letter (``basic``)."""

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""When the shipped plans and meters start: before any request (they are the defaults)."""


class Plan(_Frozen):
    """One version of a plan's terms, in force from ``effective_from`` until the next version."""

    id: PlanId
    display_name: str
    price_usd: Money = Field(ge=0, description="debited once when a customer chooses the plan")
    requests_per_minute: int = Field(gt=0)
    tokens_per_minute: int = Field(gt=0)
    discount_bps: int = Field(ge=0, le=10_000, description="10000 = 100% off")
    choosable: bool = Field(
        default=True, description="customers may choose it (sign-up, upgrade); else operator-set"
    )
    effective_from: datetime = EPOCH


class AccountTerms(_Frozen):
    """One account's own terms from ``effective_from`` on (an enterprise customer's limits or
    discount); a field left None keeps the plan's."""

    effective_from: datetime
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    discount_bps: int | None = Field(default=None, ge=0, le=10_000)


class Terms(NamedTuple):  # a tuple: built on every request at the edge, cheaply
    """What one account pays and may spend at one moment: its plan's terms, its own overrides
    applied (what admission, leases and settlement all use)."""

    plan: Plan
    requests_per_minute: int
    tokens_per_minute: int
    discount_bps: int


class _Dated(Protocol):
    @property
    def effective_from(self) -> datetime: ...


_D = TypeVar("_D", bound=_Dated)


def latest_in_force(versions: Iterable[_D], moment: datetime) -> _D | None:
    """The version in force at ``moment``: the latest whose start is not after it (of two with
    the same start, the first). One pass without a list: the edge asks several times a request."""
    found: _D | None = None
    for version in versions:
        start = version.effective_from
        if start <= moment and (found is None or start > found.effective_from):
            found = version
    return found


class CacheMultipliers(_Frozen):
    """Multipliers of the input price, in basis points (10000 = 1x)."""

    cache_read: int
    cache_write_5m: int
    cache_write_1h: int


class MeterPoint(_Frozen):
    """One effective-dated price of a meter beyond tokens.

    A *unit* meter (a server tool's requests) costs ``usd_per_unit`` each; a *multiplier* meter
    (a service tier, an inference region, a speed, the long-context premium) multiplies the
    request's token cost by ``input_bps`` (input and cache tokens) and ``output_bps`` (output).
    """

    effective_from: datetime
    usd_per_unit: Money = Field(default=0, ge=0)
    input_bps: int = Field(default=10_000, ge=0)
    output_bps: int = Field(default=10_000, ge=0)


class LongContext(_Frozen):
    """Requests whose input (cache reads and writes included) exceeds ``threshold_tokens`` are
    priced with the ``long_context`` meter, on models whose context window exceeds it."""

    threshold_tokens: int = Field(gt=0)


class Catalogue(_Frozen):
    models: tuple[ModelEntry, ...]
    aliases: dict[str, str]
    plans: tuple[Plan, ...] = Field(description="every version of every plan (effective-dated)")
    cache_multipliers_bps: CacheMultipliers
    meters: dict[str, tuple[MeterPoint, ...]] = Field(
        default_factory=dict,
        description="meter id -> prices; ids: see aiapi_shared.meters",
    )
    long_context: LongContext | None = None
    account_terms: dict[str, tuple[AccountTerms, ...]] = Field(
        default_factory=dict, description="account id -> its own terms over its plan's"
    )

    def meter_at(self, meter: str, moment: datetime) -> MeterPoint | None:
        """The price of ``meter`` in force at ``moment`` (None: the catalogue cannot price it)."""
        return latest_in_force(self.meters.get(meter, ()), moment)

    def model(self, model_id: str) -> ModelEntry | None:
        """The sold model a requested id is served as (see the module's rules), or None."""
        resolver = self._resolver
        if not resolver.built_from(self.models, self.aliases):  # a model_copy(update=...)
            del self.__dict__["_resolver"]
            resolver = self._resolver
        return resolver.resolve(model_id)

    @cached_property
    def _resolver(self) -> _Resolver:
        return _Resolver(self.models, self.aliases)

    def plan(self, plan_id: str, moment: datetime | None = None) -> Plan:
        """The version of ``plan_id`` in force at ``moment`` (now when not given)."""
        found = latest_in_force(self._versions(plan_id), moment or datetime.now(UTC))
        if found is None:
            raise KeyError(plan_id)
        return found

    def _versions(self, plan_id: str) -> tuple[Plan, ...]:
        """``plan_id``'s versions, grouped once per catalogue (the edge asks on every request;
        a ``model_copy(update=...)`` with other plans is grouped afresh)."""
        index = self.__dict__.get("_plan_index")
        if index is None or index[0] is not self.plans:
            grouped: dict[str, list[Plan]] = {}
            for version in self.plans:
                grouped.setdefault(version.id, []).append(version)
            index = (self.plans, {name: tuple(found) for name, found in grouped.items()})
            self.__dict__["_plan_index"] = index
        versions: tuple[Plan, ...] = index[1].get(plan_id, ())
        return versions

    def plans_at(self, moment: datetime | None = None) -> tuple[Plan, ...]:
        """Every plan as it is at ``moment`` (now when not given), in the catalogue's order."""
        at = moment or datetime.now(UTC)
        names = dict.fromkeys(p.id for p in self.plans)
        in_force = (latest_in_force(self._versions(name), at) for name in names)
        return tuple(plan for plan in in_force if plan is not None)

    def terms(self, plan_id: str, account_id: str, moment: datetime) -> Terms:
        """What ``account_id`` on ``plan_id`` pays and may spend at ``moment``: the plan's
        version in force then, with the account's own terms in force then laid over it."""
        plan = self.plan(plan_id, moment)
        own = latest_in_force(self.account_terms.get(account_id, ()), moment)
        if own is None:
            return Terms(plan, plan.requests_per_minute, plan.tokens_per_minute, plan.discount_bps)
        return Terms(
            plan,
            own.requests_per_minute or plan.requests_per_minute,
            own.tokens_per_minute or plan.tokens_per_minute,
            plan.discount_bps if own.discount_bps is None else own.discount_bps,
        )


_WILDCARDS = ("*", "?", "[")
_LATEST = "-latest"
_MEMO_LIMIT = 4096  # resolutions remembered: patterns match unboundedly many ids


def is_pattern(alias: str) -> bool:
    return any(w in alias for w in _WILDCARDS)


def _specificity(pattern: str) -> tuple[int, int, str]:
    literal = min((pattern.index(w) for w in _WILDCARDS if w in pattern), default=len(pattern))
    return (-literal, -len(pattern), pattern)


class _Resolver:
    """Requested id → sold model, built once per catalogue (the edge asks on every request)."""

    def __init__(self, models: tuple[ModelEntry, ...], aliases: dict[str, str]) -> None:
        self._source = (models, aliases)
        self._sold = {m.id: m for m in models}
        self._exact = {a: t for a, t in aliases.items() if not is_pattern(a)}
        self._patterns = sorted(
            ((a, t) for a, t in aliases.items() if is_pattern(a)),
            key=lambda item: _specificity(item[0]),
        )
        self._memo: dict[str, ModelEntry | None] = {}

    def built_from(self, models: tuple[ModelEntry, ...], aliases: dict[str, str]) -> bool:
        return self._source[0] is models and self._source[1] is aliases

    def resolve(self, model_id: str) -> ModelEntry | None:
        try:
            return self._memo[model_id]
        except KeyError:
            pass
        entry = self._direct(model_id)
        if entry is None and model_id.endswith(_LATEST):
            entry = self._direct(model_id[: -len(_LATEST)])
        if entry is None:
            entry = next(
                (self._sold.get(t) for a, t in self._patterns if fnmatchcase(model_id, a)), None
            )
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[model_id] = entry
        return entry

    def _direct(self, model_id: str) -> ModelEntry | None:
        entry = self._sold.get(model_id)
        if entry is None:
            target = self._exact.get(model_id)
            entry = self._sold.get(target) if target is not None else None
        return entry


@cache
def default_catalogue() -> Catalogue:
    """The catalogue shipped with the package (parsed once)."""
    raw = resources.files("aiapi_shared").joinpath("catalogue.json").read_text("utf-8")
    return Catalogue.model_validate_json(raw)
