"""The migrations job: ``python -m aiapi_shared.dbadmin migrate SERVICE [--grant ROLE]``.

Run before a service's new version starts (a Kubernetes Job, a compose one-off), as the role that
owns the database (``AIAPI_DATABASE_URL`` names it): it applies the service's pending migrations
and, with ``--grant``, gives the service's own login role the rights to use the data and nothing
more. The running service, connected as that role, then finds its schema current and does no DDL
(:func:`aiapi_shared.db.migrate`). Each image holds only its own service, so the job runs each
service's step in that service's image.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiapi_shared.db import MigrationError, grant_service_role, migrate
from aiapi_shared.settings import BaseServiceSettings

# service -> (schema, migrations package); the edge has no database.
SCHEMAS: dict[str, tuple[str, str]] = {
    "billing": ("billing", "aiapi_billing.migrations"),
    "accounts": ("accounts", "aiapi_accounts.migrations"),
    "payments": ("payments", "aiapi_payments.migrations"),
}


async def _migrate(service: str, grant: str | None) -> int:
    settings = BaseServiceSettings()
    if settings.database_url is None:
        print("AIAPI_DATABASE_URL is required (the owner role's URL)", file=sys.stderr)
        return 2
    url = settings.database_url.get_secret_value()
    schema, package = SCHEMAS[service]
    try:
        applied = await migrate(url, schema=schema, package=package)
    except MigrationError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 1
    if grant:
        await grant_service_role(url, schema=schema, role=grant)
    print(
        f"{service}: {len(applied)} migration(s) applied" + (f", {grant} granted" if grant else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiapi_shared.dbadmin")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("migrate", help="apply a service's migrations, grant its role")
    run.add_argument("service", choices=sorted(SCHEMAS))
    run.add_argument("--grant", metavar="ROLE", help="the service's login role")
    args = parser.parse_args(argv)
    return asyncio.run(_migrate(args.service, args.grant))


if __name__ == "__main__":
    sys.exit(main())
