"""``aiapi admin upstream-keys list|add|set|disable|enable|remove|test``: the upstream pool.

``add`` reads the key from a file (``--key-file``) or from standard input, never from the command
line, where it would stay in the shell's history and in the process list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from aiapi_cli.admin_operators import with_reason

BASE = "/admin/v1/upstream-keys"
GROUP = "upstream-keys"


class KeyInputError(ValueError):
    """No key was given to ``add``."""


def add_parser(groups: Any) -> None:
    upstream = groups.add_parser(GROUP, help="the upstream pool: add, change, disable, test keys")
    actions = upstream.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every key (hint only), health per edge, errors, spend")
    # No abbreviations: ``--key`` must not pass for ``--key-file`` (a key on the command line).
    add = with_reason(
        actions.add_parser(
            "add", help="add a key (read from --key-file or standard input)", allow_abbrev=False
        )
    )
    add.add_argument("--key-file", help="a file holding the key (else: standard input)")
    _options(add)
    add.add_argument("--disabled", action="store_true", help="add it without traffic")
    change = with_reason(
        actions.add_parser("set", help="change a key's weight, models, organisation, URL")
    )
    change.add_argument("id")
    _options(change)
    for action in ("disable", "enable", "remove", "test"):
        with_reason(actions.add_parser(action)).add_argument("id")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="the key's upstream (default: the edges')")
    parser.add_argument("--organization", help="its organisation label (prompt-cache affinity)")
    parser.add_argument("--weight", type=int, help="its share of traffic, 1 to 1000")
    parser.add_argument("--models", help="comma-separated model ids it alone serves ('' : all)")


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.base_url is not None:
        body["base_url"] = args.base_url
    if args.organization is not None:
        body["organization"] = args.organization
    if args.weight is not None:
        body["weight"] = args.weight
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    return body


def read_key(key_file: str | None, stdin: TextIO | None = None) -> str:
    if key_file:
        try:
            with open(key_file, encoding="utf-8") as handle:
                key = handle.read().strip()
        except OSError as exc:
            raise KeyInputError(f"aiapi admin: cannot read {key_file}: {exc.strerror}") from None
    else:
        source = stdin or sys.stdin
        if source.isatty():
            print("upstream key (input hidden is not supported; paste, then Enter):",
                  file=sys.stderr)  # fmt: skip
        key = source.readline().strip()
    if not key:
        raise KeyInputError("aiapi admin: no upstream key given (--key-file or standard input)")
    return key


def to_request(
    args: argparse.Namespace, stdin: TextIO | None = None
) -> tuple[str, str, dict[str, Any] | None, float]:
    """(method, path, body, timeout) of an ``upstream-keys`` command line."""
    action = args.action
    if action == "list":
        return "GET", BASE, None, 30.0
    if action == "add":
        body = {"key": read_key(args.key_file, stdin), **_changes(args)}
        if args.disabled:
            body["enabled"] = False
        return "POST", BASE, body, 30.0
    path = f"{BASE}/{args.id}"
    if action == "set":
        return "PATCH", path, _changes(args), 30.0
    if action in ("disable", "enable"):
        return "PATCH", path, {"enabled": action == "enable"}, 30.0
    if action == "remove":
        return "DELETE", path, None, 30.0
    return "POST", path + "/test", None, 60.0  # the edge waits up to 30 s for the upstream
