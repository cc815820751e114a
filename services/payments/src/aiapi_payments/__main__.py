"""`python -m aiapi_payments`: check the settings, then run the service until SIGTERM.

Exit codes: 0 after a graceful stop, 1 when the service failed while running (NATS closed
for good, a task died), 2 when it refused to start (a secret in the settings, a key or
address that does not check out, the wrong chain), 3 when start-up failed otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn
import uvloop

from aiapi_payments import logs, startup
from aiapi_payments.config import PaymentsConfig, StartupRefused
from aiapi_payments.service import PaymentsService, create_app
from aiapi_payments.settings import PaymentsSettings

log = logging.getLogger("aiapi.payments")


async def serve(settings: PaymentsSettings, config: PaymentsConfig) -> int:
    app = create_app(settings, config)
    service: PaymentsService = app.state.service
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.payments_port,
            access_log=False,
            log_config=None,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    failing = asyncio.create_task(service.failed.wait())
    await asyncio.wait({serving, failing}, return_when=asyncio.FIRST_COMPLETED)
    if failing.done():
        server.should_exit = True
    await serving
    failing.cancel()
    if service.refused is not None:
        return 2
    if service.failed.is_set():
        return 1
    return 0 if server.started else 3


def main() -> None:
    logs.configure("INFO")
    try:
        settings, config = startup.load()
    except StartupRefused as refusal:
        log.error("payments refuses to start: %s", refusal)
        sys.exit(2)
    logs.configure(settings.log_level)
    sys.exit(uvloop.run(serve(settings, config)))


if __name__ == "__main__":
    main()
