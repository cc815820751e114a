"""The operator console's commands of ``aiapi admin``: find and show accounts, the business
report (CSV on stdout by default) and the live view."""

from __future__ import annotations

import argparse
from typing import Any

from aiapi_cli.admin_call import Call


def console_parsers(groups: Any, accounts: Any) -> None:
    """Adds ``accounts search|show``, ``reports usage`` and ``live``."""
    search = accounts.add_parser(
        "search",
        help="find accounts by email (or part of it), account id, key id or hint, request-id, "
        "deposit address or transaction hash; with no text, list them",
    )
    search.add_argument("q", nargs="?", default="")
    search.add_argument("--sort", choices=["created", "balance", "spend"], default="created")
    search.add_argument("--order", choices=["desc", "asc"], default="desc")
    search.add_argument("--limit", type=int, default=50)
    search.add_argument("--cursor", help="the next_cursor of the previous page")
    accounts.add_parser(
        "show", help="one account: figures, keys, sessions, ledger, usage, deposits"
    ).add_argument("id")

    reports = groups.add_parser("reports", help="the business: revenue, cost, margin")
    kinds = reports.add_subparsers(dest="action", required=True)
    usage = kinds.add_parser("usage", help="usage, revenue, upstream cost and margin (CSV)")
    usage.add_argument("--from", dest="since", help="YYYY-MM-DD or ISO time (default 30 days)")
    usage.add_argument("--to", dest="until", help="YYYY-MM-DD (included) or ISO time")
    usage.add_argument(
        "--group-by",
        choices=["day", "week", "month", "model", "plan", "account"],
        default="day",
    )
    usage.add_argument("--format", choices=["csv", "json"], default="csv")
    groups.add_parser("live", help="requests/s, errors, key health, spool, settlement lag")


def console_call(args: argparse.Namespace) -> Call:
    base = "/admin/v1/accounts"
    if args.group == "live":
        return Call("GET", "/admin/v1/live")
    if args.group == "reports":
        params = {"group_by": args.group_by, "format": args.format}
        params |= {k: v for k, v in (("from", args.since), ("to", args.until)) if v}
        return Call("GET", "/admin/v1/reports/usage", params=params, timeout_s=60.0)
    if args.action == "show":
        return Call("GET", f"{base}/{args.id}/overview")
    params = {"sort": args.sort, "order": args.order, "limit": str(args.limit)}
    params |= {k: v for k, v in (("q", args.q), ("cursor", args.cursor)) if v}
    return Call("GET", base, params=params)
