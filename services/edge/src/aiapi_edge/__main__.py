"""``python -m aiapi_edge``: the edge under uvicorn (uvloop, httptools, no access log)."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
import uvloop
from aiapi_shared.logs import configure_logging

from aiapi_edge.app import create_app
from aiapi_edge.http_guard import guarded_protocol
from aiapi_edge.settings import EdgeSettings


async def serve(settings: EdgeSettings) -> int:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.edge_port,
        loop="uvloop",
        http=guarded_protocol(settings),  # httptools with head bounds
        access_log=False,
        server_header=False,
        proxy_headers=False,  # no X-Forwarded-* rewriting middleware on every request
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,
        backlog=4096,
    )
    server = uvicorn.Server(config)

    async def exit_on_fatal() -> None:
        await app.service.fatal.wait()
        server.should_exit = True

    watcher = asyncio.ensure_future(exit_on_fatal())
    try:
        await server.serve()
    finally:
        watcher.cancel()
    if app.service.fatal.is_set() or not server.started:
        return 1
    return 0


def main() -> None:
    settings = EdgeSettings()
    configure_logging(settings.log_level)
    sys.exit(uvloop.run(serve(settings)))


if __name__ == "__main__":
    main()
