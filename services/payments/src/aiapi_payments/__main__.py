"""`python -m aiapi_payments`: check the settings, then run the service until SIGTERM.

Exit codes: 0 after a graceful stop, 1 when the service failed while running (NATS closed
for good, a task died), 2 when it refused to start (a secret in the settings, a key or
address that does not check out, the wrong chain), 3 when start-up failed otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn
import uvloop
from aiapi_shared.logs import configure_logging

from aiapi_payments import startup
from aiapi_payments.config import PaymentsConfig, StartupRefused
from aiapi_payments.service import PaymentsService, health_app
from aiapi_payments.settings import PaymentsSettings

log = logging.getLogger("aiapi.payments")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: `serve` owns SIGTERM/SIGINT (uvicorn would re-raise
    the signal after a graceful stop, and the process would not exit 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: PaymentsSettings, config: PaymentsConfig) -> int:
    """Start the service, then serve its health routes until SIGTERM or a failure."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    service = PaymentsService(settings, config)
    try:
        await service.start()
    except StartupRefused as refusal:
        log.error("payments refuses to start: %s", refusal)
        await service.stop()
        return 2
    except Exception:
        log.exception("payments could not start")
        await service.stop()
        return 3
    server = _Server(
        uvicorn.Config(
            health_app(service),
            host=settings.host,
            port=settings.payments_port,
            access_log=False,
            log_config=None,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    waiters = [asyncio.create_task(event.wait()) for event in (service.failed, stopping)]
    try:
        await asyncio.wait({serving, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        for waiter in waiters:
            waiter.cancel()
        await service.stop()
    log.info("payments stopped")
    return 1 if service.failed.is_set() else 0


def main() -> None:
    configure_logging("INFO")
    try:
        settings, config = startup.load()
    except StartupRefused as refusal:
        log.error("payments refuses to start: %s", refusal)
        sys.exit(2)
    configure_logging(settings.log_level, redact=startup.secret_values(settings, config))
    sys.exit(uvloop.run(serve(settings, config)))


if __name__ == "__main__":
    main()
