"""``aiapi admin plans|prices|account-terms``: the terms of sale, as effective-dated versions.

Each ``set`` adds a version from ``--from`` (ISO time with zone; default now, never in the past)
through the operator API (``/admin/v1/plans``, ``/admin/v1/prices``, ``PATCH`` of an account).
"""

from __future__ import annotations

import argparse
from typing import Any

from aiapi_cli.admin_call import Call
from aiapi_cli.admin_operators import with_reason


def add_parsers(groups: Any) -> None:
    plans = groups.add_parser("plans", help="plans as effective-dated data")
    plan_actions = plans.add_subparsers(dest="action", required=True)
    plan_actions.add_parser("list")
    plan = plan_actions.add_parser("set", help="add a plan or a new version of one")
    plan.add_argument("name")
    plan.add_argument("--display-name")
    plan.add_argument("--price", help="one-time price in USD, e.g. 19.00")
    plan.add_argument("--rpm", type=int, help="requests per minute")
    plan.add_argument("--tpm", type=int, help="tokens per minute")
    plan.add_argument("--discount-bps", type=int, help="7000 = 70%% off the list prices")
    choosable = plan.add_mutually_exclusive_group()
    choosable.add_argument("--choosable", dest="choosable", action="store_true", default=None)
    choosable.add_argument("--not-choosable", dest="choosable", action="store_false")
    _from(plan)

    prices = groups.add_parser("prices", help="model and meter prices, effective-dated")
    price_actions = prices.add_subparsers(dest="action", required=True)
    price_actions.add_parser("list")
    meter = price_actions.add_parser("set-meter", help="price a meter (a tool, tier, region)")
    meter.add_argument("meter", help="e.g. web_search_requests, service_tier:priority")
    meter.add_argument("--usd-per-unit", default="0", help="USD per unit (server tools)")
    meter.add_argument("--input-bps", type=int, default=10_000, help="input multiplier, 1x=10000")
    meter.add_argument("--output-bps", type=int, default=10_000, help="output multiplier")
    _from(meter)
    model = price_actions.add_parser("set-model", help="price a model")
    model.add_argument("model")
    model.add_argument("--input", required=True, help="USD per million input tokens")
    model.add_argument("--output", required=True, help="USD per million output tokens")
    _from(model)

    terms = groups.add_parser("account-terms", help="an account's own limits and discount")
    terms.add_argument("id")
    limits = terms.add_mutually_exclusive_group()
    limits.add_argument("--rpm", type=int, help="its own requests per minute")
    limits.add_argument("--plan-limits", action="store_true", help="back to the plan's limits")
    terms.add_argument("--tpm", type=int, help="its own tokens per minute")
    discount = terms.add_mutually_exclusive_group()
    discount.add_argument("--discount-bps", type=int, help="its own discount")
    discount.add_argument("--plan-discount", action="store_true", help="back to the plan's")
    _from(terms)


def _from(parser: argparse.ArgumentParser) -> None:
    """The options of every write here: when the new version starts, and why (the audit log)."""
    parser.add_argument("--from", dest="effective_from", help="ISO time with zone (default: now)")
    with_reason(parser)


def _dated(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.effective_from:
        body["effective_from"] = args.effective_from
    return body


def to_call(args: argparse.Namespace) -> Call | None:
    """The call for these groups, or None for another group."""
    if args.group == "plans":
        if args.action == "list":
            return Call("GET", "/admin/v1/plans")
        given = {
            "display_name": args.display_name,
            "price_usd": args.price,
            "requests_per_minute": args.rpm,
            "tokens_per_minute": args.tpm,
            "discount_bps": args.discount_bps,
            "choosable": args.choosable,
        }
        body = {k: v for k, v in given.items() if v is not None}
        return Call("PUT", f"/admin/v1/plans/{args.name}", _dated(body, args))
    if args.group == "prices":
        if args.action == "list":
            return Call("GET", "/admin/v1/prices")
        if args.action == "set-meter":
            body = {
                "usd_per_unit": args.usd_per_unit,
                "input_bps": args.input_bps,
                "output_bps": args.output_bps,
            }
            return Call("PUT", f"/admin/v1/prices/meters/{args.meter}", _dated(body, args))
        body = {"input_usd_per_mtok": args.input, "output_usd_per_mtok": args.output}
        return Call("PUT", f"/admin/v1/prices/models/{args.model}", _dated(body, args))
    if args.group == "account-terms":
        body = {}
        if args.plan_limits:
            body["limits"] = {}
        elif args.rpm is not None or args.tpm is not None:
            limits = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm}
            body["limits"] = {k: v for k, v in limits.items() if v is not None}
        if args.plan_discount:
            body["discount_bps"] = None
        elif args.discount_bps is not None:
            body["discount_bps"] = args.discount_bps
        return Call("PATCH", f"/admin/v1/accounts/{args.id}", _dated(body, args))
    return None
