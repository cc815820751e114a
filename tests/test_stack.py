"""`aiapi up`'s plan and health check: two stacks on one machine share no port, and a health
answer from another stack's process (on a port this one expected its own) is not accepted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from aiapi_cli.ports import free_port
from aiapi_cli.stack import ServiceSpec, StackPlan, plan_stack
from aiapi_cli.supervisor import Child
from aiapi_cli.up import refuse_taken_ports
from aiapi_shared.runner import Plan, serve
from aiapi_simulator.serve import Upstream


def _plan(environ: dict[str, str], instance_id: str) -> StackPlan:
    return plan_stack(
        environ,
        nats_url="nats://127.0.0.1:4222",
        database_url="postgresql://x@127.0.0.1/aiapi",
        data_dir=Path("/tmp/aiapi-plan-test"),
        admin_token="token-0123456789abcdef",
        instance_id=instance_id,
        pick_port=free_port,
    )


def _ports(plan: StackPlan) -> list[int]:
    found = [s.port for s in plan.services] + list(plan.fixed_ports.values())
    for spec in plan.services:
        found += [int(v) for k, v in spec.env.items() if k.endswith("_PORT")]
    return sorted(set(found))


@contextlib.contextmanager
def _holding(ports: list[int]) -> Iterator[None]:
    """Listen on ``ports``, as a running stack's processes do."""
    with contextlib.ExitStack() as stack:
        for port in ports:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def test_two_stacks_on_one_machine_share_no_port() -> None:
    first = _plan({}, "up-first")
    every = [s.port for s in first.services] + list(first.fixed_ports.values())
    assert len(every) == len(set(every))  # no port twice within a stack
    assert {s.env["AIAPI_INSTANCE_ID"] for s in first.services if s.name != "simulator"} == {
        "up-first"
    }
    with _holding(_ports(first)):
        # The second stack's operator moves the ports people type; everything else is free.
        second_env = {
            "AIAPI_EDGE_PORT": str(free_port()),
            "AIAPI_ACCOUNTS_PORT": str(free_port()),
            "AIAPI_ADMIN_PORT": str(free_port()),
        }
        second = _plan(second_env, "up-second")
        refuse_taken_ports(second)  # its fixed ports are free
        with pytest.raises(RuntimeError, match="AIAPI_EDGE_PORT"):
            refuse_taken_ports(_plan({}, "up-third"))  # the defaults are the first stack's
    assert set(_ports(first)).isdisjoint(_ports(second))


def test_internal_listeners_and_billing_and_payments_have_no_fixed_port() -> None:
    plan = _plan({}, "up-x")
    specs = {s.name: s for s in plan.services}
    assert "AIAPI_BILLING_PORT" not in specs["billing"].env
    assert "AIAPI_PAYMENTS_PORT" not in specs["payments"].env
    for name in ("billing", "accounts", "payments", "edge"):
        assert specs[name].port == int(specs[name].env["AIAPI_INTERNAL_PORT"])
        assert specs[name].health_url.endswith("/readyz")
    assert plan.admin_port == 8088
    assert "AIAPI_ADMIN_TOKEN" not in specs["payments"].env  # only accounts needs it


@contextlib.contextmanager
def _probes_of(name: str, instance_id: str) -> Iterator[int]:
    """A real internal listener (the shared runner's) of process ``name`` of ``instance_id``."""
    port = free_port()
    plan = Plan(name, Upstream(), (), ("127.0.0.1", port), instance_id)
    handle: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> int:
        stop = asyncio.Event()
        handle.append((asyncio.get_running_loop(), stop))
        return await serve(plan, stop)

    thread = threading.Thread(target=uvloop.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop, stop = handle[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def _wait_ready(child: Child) -> bool:
    for _ in range(100):
        if child.healthy():
            return True
        threading.Event().wait(0.05)
    return False


def test_a_health_answer_from_another_stacks_process_is_not_accepted(tmp_path: Path) -> None:
    with _probes_of("billing", "up-other") as port:
        mine = Child(
            ServiceSpec("billing", "aiapi_billing", port, instance_id="up-other"), tmp_path
        )
        assert _wait_ready(mine)  # the listener answers, and the owner accepts it
        theirs = ServiceSpec("billing", "aiapi_billing", port, instance_id="up-mine")
        assert not Child(theirs, tmp_path / "log").healthy()
        wrong_service = ServiceSpec("payments", "aiapi_payments", port, instance_id="up-other")
        assert not Child(wrong_service, tmp_path / "log").healthy()
