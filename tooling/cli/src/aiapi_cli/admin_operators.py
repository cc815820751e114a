"""``aiapi admin operators|tokens|audit|whoami``: named operators, their API tokens and the audit
log. A password is read from standard input (``--password-stdin``), never from the command line
(where other users of the machine could read it)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from aiapi_cli.admin_call import Call

GROUPS = ("operators", "tokens", "audit", "whoami")
_O = "/admin/v1/operators"


def with_reason(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A write command's ``--reason``: why, kept in the audit log (the Aiapi-Reason header)."""
    parser.add_argument("--reason", help="why (kept in the audit log with your name)")
    return parser


def add_parsers(groups: Any) -> None:
    operators = groups.add_parser("operators", help="named operators (admin or support)")
    actions = operators.add_subparsers(dest="action", required=True)
    create = with_reason(actions.add_parser("create"))
    create.add_argument("--name", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=["admin", "support"], required=True)
    create.add_argument(
        "--password-stdin", action="store_true", help="read a console password from stdin"
    )
    actions.add_parser("list")
    actions.add_parser("get").add_argument("id")
    for name in ("disable", "enable"):
        with_reason(actions.add_parser(name)).add_argument("id")
    role = with_reason(actions.add_parser("set-role"))
    role.add_argument("id")
    role.add_argument("role", choices=["admin", "support"])
    with_reason(
        actions.add_parser("set-password", help="a new console password, read from stdin")
    ).add_argument("id")

    tokens = groups.add_parser("tokens", help="operators' API tokens (shown once)")
    token_actions = tokens.add_subparsers(dest="action", required=True)
    token_create = with_reason(token_actions.add_parser("create"))
    token_create.add_argument("operator_id")
    token_create.add_argument("--name", required=True)
    token_actions.add_parser("list").add_argument("operator_id")
    revoke = with_reason(token_actions.add_parser("revoke"))
    revoke.add_argument("operator_id")
    revoke.add_argument("token_id")

    log = groups.add_parser("audit", help="the audit log of operator writes, newest first")
    log.add_argument("--account", help="an account id")
    log.add_argument("--operator", help="an operator id or name")
    log.add_argument("--from", dest="since", help="ISO date or time (UTC unless given)")
    log.add_argument("--to", dest="until", help="ISO date or time; a date includes that day")
    log.add_argument("--cursor", help="next_cursor of the previous page")
    log.add_argument("--limit", help="entries per page (default 50)")

    groups.add_parser("whoami", help="the operator the token belongs to")


def _password(stdin: TextIO) -> str:
    return stdin.readline().rstrip("\r\n")


def to_call(args: argparse.Namespace, stdin: TextIO) -> Call:
    if args.group == "whoami":
        return Call("GET", "/admin/v1/whoami")
    if args.group == "audit":
        given = {
            "account_id": args.account,
            "operator": args.operator,
            "from": args.since,
            "to": args.until,
            "cursor": args.cursor,
            "limit": args.limit,
        }
        return Call("GET", "/admin/v1/audit", params={k: v for k, v in given.items() if v})
    if args.group == "tokens":
        base = f"{_O}/{args.operator_id}/tokens"
        if args.action == "create":
            return Call("POST", base, {"name": args.name})
        if args.action == "list":
            return Call("GET", base)
        return Call("DELETE", f"{base}/{args.token_id}")
    return _operators_call(args, stdin)


def _operators_call(args: argparse.Namespace, stdin: TextIO) -> Call:
    if args.action == "create":
        body: dict[str, Any] = {"name": args.name, "email": args.email, "role": args.role}
        if args.password_stdin:
            body["password"] = _password(stdin)
        return Call("POST", _O, body)
    if args.action == "list":
        return Call("GET", _O)
    one = f"{_O}/{args.id}"
    changes: dict[str, dict[str, Any]] = {
        "disable": {"disabled": True},
        "enable": {"disabled": False},
        "set-role": {"role": getattr(args, "role", None)},
    }
    if args.action in changes:
        return Call("PATCH", one, changes[args.action])
    if args.action == "set-password":
        return Call("PATCH", one, {"password": _password(stdin)})
    return Call("GET", one)
