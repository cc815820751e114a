"""``python -m aiapi_edge``: the edge under the shared runner (exit codes: docs/operations.md).

With more than one worker (``AIAPI_EDGE_WORKERS``; 0: one per available CPU, as ``aiapi up``,
compose and Kubernetes ask) this process is the supervisor (:mod:`.supervisor`) and each worker is this same command, started by it with
the sockets it inherits; with one, this process is the edge.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from aiapi_shared.runner import Listener, Plan, launch, load_settings

from aiapi_edge.settings import EdgeSettings
from aiapi_edge.supervisor import WorkerSupervisor
from aiapi_edge.worker_plan import cpu_quota, worker_count
from aiapi_edge.worker_process import die_with, inherited_socket

_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def plan() -> Plan:
    settings = load_settings(EdgeSettings)
    if settings.edge_listen_fd is None:  # not a worker: how many to run?
        count = worker_count(settings.edge_workers, len(os.sched_getaffinity(0)), _quota())
        if count > 1:
            instance = settings.instance_id or secrets.token_hex(8)
            supervisor = WorkerSupervisor(settings, count, instance)
            return Plan.of(
                settings,
                supervisor,
                instance_id=instance,
                graceful_s=settings.edge_graceful_timeout_s,
            )
    return _edge(settings)


def _edge(settings: EdgeSettings) -> Plan:
    # Imported here: a supervisor never loads the application (tens of MiB it would hold idle).
    from aiapi_edge.app import create_app
    from aiapi_edge.http_guard import guarded_protocol

    if settings.edge_supervisor_pid is not None:
        die_with(settings.edge_supervisor_pid)
    app = create_app(settings)
    http = {
        "http": guarded_protocol(settings),  # httptools with head bounds
        # Clients (SDKs, Claude Code) keep connections open between requests; a proxy in front
        # may open many at once (the listen queue: ``runner.LISTEN_BACKLOG``).
        "timeout_keep_alive": 75,
    }
    public_fd, internal_fd = settings.edge_listen_fd, settings.edge_internal_fd
    public = Listener(
        "public",
        app,
        settings.host,
        settings.edge_port,
        http,
        sock=inherited_socket(public_fd) if public_fd is not None else None,
    )
    return Plan.of(
        settings,
        app.service,
        public,
        graceful_s=settings.edge_graceful_timeout_s,
        internal_sock=inherited_socket(internal_fd) if internal_fd is not None else None,
    )


def _quota() -> float | None:
    try:
        return cpu_quota(_CGROUP_CPU_MAX.read_text())
    except OSError:
        return None


def main() -> None:
    launch(plan)


if __name__ == "__main__":
    main()
