"""``aiapi admin ...``: the operator API from a shell (prints the JSON answer).

Reads ``AIAPI_ADMIN_URL``, the accounts service's operator listener (default
``http://127.0.0.1:8088``, ``AIAPI_ADMIN_PORT``'s default; ``aiapi up`` prints it), and
``AIAPI_ADMIN_TOKEN``: the bootstrap token, or a named operator's own token (``aiapi admin
tokens create``; a support operator's token works for every read). Each write command takes
``--reason``, which the audit log keeps with the operator's name.
Exit status: 0 for a 2xx answer, 1 for an error answer (its JSON is printed all the same),
2 for a usage error or an unreachable service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from aiapi_cli import admin_operators, admin_terms, admin_upstream
from aiapi_cli.admin_call import Call
from aiapi_cli.admin_console import console_call, console_parsers
from aiapi_cli.admin_operators import with_reason

__all__ = ["Call", "admin_main", "to_call"]

DEFAULT_URL = "http://127.0.0.1:8088"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiapi admin", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True)

    accounts = groups.add_parser("accounts", help="create, show, change accounts")
    acc = accounts.add_subparsers(dest="action", required=True)
    create = with_reason(acc.add_parser("create"))
    create.add_argument("--email", required=True)
    create.add_argument("--plan", default="basic", help="a plan's name (aiapi admin plans list)")
    acc.add_parser("get").add_argument("id")
    set_plan = with_reason(acc.add_parser("set-plan"))
    set_plan.add_argument("id")
    set_plan.add_argument("plan")
    with_reason(acc.add_parser("suspend")).add_argument("id")
    with_reason(acc.add_parser("activate")).add_argument("id")
    with_reason(
        acc.add_parser("invite", help="a one-time token that lets the owner set a password")
    ).add_argument("id")
    console_parsers(groups, acc)

    adjust = groups.add_parser("adjust", help="credit (positive) or debit (negative) USD")
    adjust.add_argument("id")
    adjust.add_argument("amount", help='decimal USD, e.g. "10.00" or "-2.50"')
    adjust.add_argument("--reason", required=True)
    adjust.add_argument("--idempotency-key", help="repeat it to retry safely")

    keys = groups.add_parser("keys", help="issue and revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_create = with_reason(key_actions.add_parser("create"))
    key_create.add_argument("id")
    key_create.add_argument("--name", required=True)
    revoke = with_reason(key_actions.add_parser("revoke"))
    revoke.add_argument("id")
    revoke.add_argument("key_id")

    groups.add_parser("deposit-addresses").add_argument("id")
    groups.add_parser("deposits").add_argument("id")

    sweep = with_reason(
        groups.add_parser(
            "sweep-plan",
            help="balances of the deposit addresses per network and asset, as an unsigned plan",
        )
    )
    sweep.add_argument("--to-evm", help="destination on every EVM network (0x...)")
    sweep.add_argument("--to-tron", help="destination on TRON (T...)")
    sweep.add_argument("--to-btc", help="destination on Bitcoin (bc1...)")
    sweep.add_argument("--out", help="also write the plan to this file (for the signing wallet)")

    rates = groups.add_parser("rates", help="manual ETH/BTC rates")
    rate_actions = rates.add_subparsers(dest="action", required=True)
    rate_set = with_reason(rate_actions.add_parser("set"))
    rate_set.add_argument("asset", choices=["ETH", "BTC"])
    rate_set.add_argument("usd", help='decimal USD, e.g. "3000.00"')
    _catalogue_parser(groups)
    admin_terms.add_parsers(groups)
    admin_upstream.add_parser(groups)
    admin_operators.add_parsers(groups)
    return parser


def _catalogue_parser(groups: Any) -> None:
    catalogue = groups.add_parser("catalogue", help="models, prices and aliases on sale")
    actions = catalogue.add_subparsers(dest="action", required=True)
    actions.add_parser("show")
    model = with_reason(
        actions.add_parser("set-model", help="add a model (with prices) or change one")
    )
    model.add_argument("model_id")
    model.add_argument("--display-name", required=True)
    model.add_argument("--context-window", type=int, default=200_000)
    model.add_argument("--max-output-tokens", type=int, default=64_000)
    model.add_argument("--input", help="USD per million input tokens (a new model needs it)")
    model.add_argument("--output", help="USD per million output tokens (a new model needs it)")
    model.add_argument("--off-sale", action="store_true", help="stop selling it")
    price = with_reason(actions.add_parser("add-price", help="a price from a moment on"))
    price.add_argument("model_id")
    price.add_argument("--from", dest="effective_from", required=True, help="ISO time with zone")
    price.add_argument("--input", required=True)
    price.add_argument("--output", required=True)
    alias = with_reason(actions.add_parser("alias", help="serve and price ALIAS as MODEL"))
    alias.add_argument("alias")
    alias.add_argument("model_id")
    with_reason(actions.add_parser("unalias")).add_argument("alias")


def _catalogue_call(args: argparse.Namespace) -> Call:
    base = "/admin/v1/catalogue"
    if args.action == "show":
        return Call("GET", base)
    if args.action == "set-model":
        body: dict[str, Any] = {
            "display_name": args.display_name,
            "context_window": args.context_window,
            "max_output_tokens": args.max_output_tokens,
            "on_sale": not args.off_sale,
        }
        if args.input is not None:
            body["input_usd_per_mtok"] = args.input
        if args.output is not None:
            body["output_usd_per_mtok"] = args.output
        return Call("PUT", f"{base}/models/{args.model_id}", body)
    if args.action == "add-price":
        body = {
            "effective_from": args.effective_from,
            "input_usd_per_mtok": args.input,
            "output_usd_per_mtok": args.output,
        }
        return Call("POST", f"{base}/models/{args.model_id}/prices", body)
    if args.action == "alias":
        return Call("PUT", f"{base}/aliases/{args.alias}", {"target": args.model_id})
    return Call("DELETE", f"{base}/aliases/{args.alias}")


def _accounts_call(args: argparse.Namespace) -> Call:
    base = "/admin/v1/accounts"
    if args.action in ("search", "show"):
        return console_call(args)
    builders: dict[str, Callable[[], Call]] = {
        "create": lambda: Call("POST", base, {"email": args.email, "plan": args.plan}),
        "get": lambda: Call("GET", f"{base}/{args.id}"),
        "set-plan": lambda: Call("PATCH", f"{base}/{args.id}", {"plan": args.plan}),
        "suspend": lambda: Call("PATCH", f"{base}/{args.id}", {"status": "suspended"}),
        "activate": lambda: Call("PATCH", f"{base}/{args.id}", {"status": "active"}),
        "invite": lambda: Call("POST", f"{base}/{args.id}/invitations"),
    }
    return builders[args.action]()


def to_call(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> Call:
    """The HTTP call a parsed command line stands for."""
    base = "/admin/v1/accounts"
    if args.group in admin_operators.GROUPS:
        return admin_operators.to_call(args, stdin)
    if args.group == "accounts":
        return _accounts_call(args)
    if args.group == "catalogue":
        return _catalogue_call(args)
    terms = admin_terms.to_call(args)
    if terms is not None:
        return terms
    if args.group == admin_upstream.GROUP:
        method, path, body, timeout_s = admin_upstream.to_request(args, stdin)
        return Call(method, path, body, None, timeout_s)
    if args.group in ("reports", "live"):
        return console_call(args)
    if args.group == "adjust":
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
        body = {"amount_usd": args.amount, "reason": args.reason}
        return Call("POST", f"{base}/{args.id}/adjustments", body, headers)
    if args.group == "keys" and args.action == "create":
        return Call("POST", f"{base}/{args.id}/keys", {"name": args.name})
    if args.group == "keys":
        return Call("DELETE", f"{base}/{args.id}/keys/{args.key_id}")
    if args.group in ("deposit-addresses", "deposits"):
        return Call("GET", f"{base}/{args.id}/{args.group}")
    if args.group == "sweep-plan":
        given = {"evm": args.to_evm, "tron": args.to_tron, "bitcoin": args.to_btc}
        destinations = {name: address for name, address in given.items() if address}
        # Payments asks every node for balances: allow it the time accounts allows it.
        return Call("POST", "/admin/v1/sweep-plan", {"destinations": destinations}, None, 90.0)
    return Call("POST", "/admin/v1/rates", {"asset": args.asset, "usd": args.usd})


def admin_main(
    argv: list[str],
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    stdin: TextIO | None = None,
) -> int:
    env = os.environ if environ is None else environ
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage
        return 0 if exc.code in (0, None) else 2
    token = env.get("AIAPI_ADMIN_TOKEN", "")
    if not token:
        print("aiapi admin: set AIAPI_ADMIN_TOKEN (printed by `aiapi up`)", file=sys.stderr)
        return 2
    try:
        call = to_call(args, stdin or sys.stdin)
    except admin_upstream.KeyInputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    url = env.get("AIAPI_ADMIN_URL", DEFAULT_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {token}", **(call.headers or {})}
    reason = getattr(args, "reason", None)
    if reason and args.group != "adjust":  # an adjustment carries its reason in the body
        headers["Aiapi-Reason"] = quote(reason, safe=" ")
    try:
        with httpx.Client(base_url=url, timeout=call.timeout_s, transport=transport) as client:
            answer = client.request(
                call.method, call.path, json=call.body, headers=headers, params=call.params
            )
    except httpx.HTTPError as exc:
        print(f"aiapi admin: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 2
    _print(answer)
    out = getattr(args, "out", None)
    if out and answer.is_success:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(answer.json(), handle, indent=2)
            handle.write("\n")
        print(f"aiapi admin: the unsigned plan is in {out}", file=sys.stderr)
    return 0 if answer.is_success else 1


def _print(answer: httpx.Response) -> None:
    if answer.headers.get("content-type", "").startswith("text/csv"):
        sys.stdout.write(answer.text)  # as the API wrote it, for a file or a spreadsheet
        return
    if answer.status_code == 204 or not answer.content:
        print(json.dumps({"status": answer.status_code}))
        return
    try:
        print(json.dumps(answer.json(), indent=2))
    except ValueError:
        print(answer.text)
