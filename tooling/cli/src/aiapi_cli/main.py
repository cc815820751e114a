"""The ``aiapi`` command: ``up`` runs the whole system; ``admin`` calls the operator API."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="aiapi", description="a self-hosted Claude API gateway")
    parser.add_argument("command", choices=["up", "admin", "events-schema"])
    if not args or args[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "up":
        from aiapi_cli.up import run_up

        return run_up()
    if command == "admin":
        from aiapi_cli.admin import admin_main

        return admin_main(rest)
    if command == "events-schema":
        from aiapi_shared.events.catalogue_schema import main as schema_main

        return schema_main(rest)
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
