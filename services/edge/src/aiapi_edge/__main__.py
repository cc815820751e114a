"""``python -m aiapi_edge``: the edge under the shared runner (exit codes: docs/operations.md)."""

from __future__ import annotations

from aiapi_shared.runner import Listener, Plan, launch, load_settings

from aiapi_edge.app import create_app
from aiapi_edge.http_guard import guarded_protocol
from aiapi_edge.settings import EdgeSettings


def plan() -> Plan:
    settings = load_settings(EdgeSettings)
    app = create_app(settings)
    http = {
        "http": guarded_protocol(settings),  # httptools with head bounds
        # Clients (SDKs, Claude Code) keep connections open between requests; a proxy in front
        # may open many at once.
        "timeout_keep_alive": 75,
        "backlog": 4096,
    }
    public = Listener("public", app, settings.host, settings.edge_port, http)
    return Plan.of(settings, app.service, public, graceful_s=settings.edge_graceful_timeout_s)


def main() -> None:
    launch(plan)


if __name__ == "__main__":
    main()
