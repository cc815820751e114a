"""``python -m aiapi_accounts``: the accounts service under the shared runner: the customer API
on ``AIAPI_ACCOUNTS_PORT``, the operator API on ``AIAPI_ADMIN_PORT`` (exit codes:
docs/operations.md; no operator token refuses the start)."""

from __future__ import annotations

from aiapi_shared.http_guard import HeadGuardedProtocol
from aiapi_shared.runner import Listener, Plan, launch, load_settings

from aiapi_accounts.app import create_admin_app, create_app
from aiapi_accounts.service import Service
from aiapi_accounts.settings import AccountsSettings

GUARDED = {"http": HeadGuardedProtocol}


def plan() -> Plan:
    settings = load_settings(AccountsSettings)
    service = Service(settings)
    public = create_app(settings, service)
    admin = create_admin_app(settings, service)
    return Plan.of(
        settings,
        service,
        # Both listeners bound the request head (15 s, 64 KiB): aiapi_shared.http_guard.
        Listener("public", public, settings.host, settings.accounts_port, GUARDED),
        Listener("admin", admin, settings.admin_host, settings.admin_port, GUARDED),
        graceful_s=5.0,
    )


def main() -> None:
    launch(plan)


if __name__ == "__main__":
    main()
