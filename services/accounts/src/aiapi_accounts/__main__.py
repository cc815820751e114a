"""``python -m aiapi_accounts``: run the accounts service (uvicorn with uvloop, no access log).

Exits non-zero when the settings are incomplete (no admin token), when start-up fails, or when
the NATS connection closes for good (a supervisor restarts the process).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvicorn
import uvloop
from aiapi_shared.logs import configure_logging
from pydantic import ValidationError

from aiapi_accounts.app import create_app
from aiapi_accounts.service import Service
from aiapi_accounts.settings import AccountsSettings

log = logging.getLogger("aiapi.accounts")


async def _serve(settings: AccountsSettings) -> int:
    service = Service(settings)
    config = uvicorn.Config(
        create_app(settings, service),
        host=settings.host,
        port=settings.accounts_port,
        loop="none",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
        # Forwarding headers are judged by the app (AIAPI_TRUSTED_PROXIES), never by uvicorn,
        # which would otherwise believe them from 127.0.0.1 and rewrite the client address.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM, then re-raises the signal once it restored the
    # previous handler; this one absorbs it, so a graceful stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    serving = asyncio.create_task(server.serve())
    while not serving.done():
        await asyncio.wait({serving}, timeout=0.5)
        if service.bus is not None and service.bus.closed.is_set() and service.ready:
            log.error("NATS connection closed for good; exiting")
            server.should_exit = True
            await serving
            return 1
    if serving.exception() is not None or not server.started:
        return 1
    return 0


def main() -> None:
    try:
        settings = AccountsSettings()
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        print(f"aiapi accounts: invalid or missing settings: {fields}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    sys.exit(uvloop.run(_serve(settings)))


if __name__ == "__main__":
    main()
