"""The edge under test: a real edge (in a thread, on its own event loop) in front of the real
simulator, with a real NATS, key records written to KV the way accounts will write them, and a
small admission responder standing in for billing."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import string
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from aiapi_cli.ports import free_port
from aiapi_edge.app import EdgeApp, create_app
from aiapi_edge.http_guard import guarded_protocol
from aiapi_edge.mirrors import key_digest
from aiapi_edge.settings import EdgeSettings
from aiapi_shared.admission import AdmissionReply, AdmissionRequest
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, KEYS_BUCKET, BalanceSnapshot, KeyRecord
from aiapi_shared.events.usage_v1 import UsageRecorded
from aiapi_shared.runner import Listener, Plan, listen, serve

ALNUM = string.ascii_letters + string.digits
UPSTREAM_KEY = "sk-ant-upstream-test-0001"


def make_key() -> str:
    return "sk-cc-" + "".join(secrets.choice(ALNUM) for _ in range(36))


def key_record(
    account_id: str,
    *,
    key_id: str = "key_1",
    plan: str = "basic",
    key_status: str = "active",
    account_status: str = "active",
) -> KeyRecord:
    return KeyRecord.model_validate(
        {
            "key_id": key_id,
            "account_id": account_id,
            "plan": plan,
            "key_status": key_status,
            "account_status": account_status,
            "requests_per_minute": 200,
            "tokens_per_minute": 1_000_000,
            "updated_at": datetime.now(UTC),
        }
    )


async def put_key(bus: Bus, key: str, record: KeyRecord) -> None:
    kv = await bus.ensure_kv(KEYS_BUCKET)
    await kv.put(key_digest(key), record.model_dump_json().encode())


async def put_balance(bus: Bus, account_id: str, available_usd: int) -> None:
    """A balance snapshot as billing publishes one (the offline allowance needs one)."""
    kv = await bus.ensure_kv(BALANCES_BUCKET)
    nano = available_usd * 1_000_000_000
    snapshot = BalanceSnapshot(
        account_id=account_id, balance=nano, available=nano, version=1, as_of=datetime.now(UTC)
    )
    await kv.put(account_id, snapshot.model_dump_json().encode())


@dataclass
class Billing:
    """An in-test admission responder: admits by default, or answers ``reply``."""

    requests: list[AdmissionRequest] = field(default_factory=list)
    reply: AdmissionReply | None = None
    # Answer nothing the edge can use (as a billing it cannot reach); at once, so that the
    # requests behind this one are not held up.
    away: bool = False

    async def handle(self, data: bytes) -> bytes:
        request = AdmissionRequest.model_validate_json(data)
        if self.away:
            return b"billing is away"
        self.requests.append(request)
        reply = self.reply or AdmissionReply(
            decision="admit", hold_id=f"hold_{request.request_id}", hold_amount=1_000_000
        )
        return reply.model_dump_json().encode()


class EdgeThread:
    """A real edge under the shared runner (uvicorn, uvloop, httptools), on free ports, in a
    background thread: its public listener at ``base_url``, its probes at ``internal_url``."""

    def __init__(self, settings: EdgeSettings, catalogue: Catalogue | None = None) -> None:
        self.app: EdgeApp = create_app(settings, catalogue)
        sock = listen("127.0.0.1", 0)
        self.port, internal_port = sock.getsockname()[1], free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.internal_url = f"http://127.0.0.1:{internal_port}"
        self._plan = Plan(
            name="edge",
            service=self.app.service,
            listeners=(
                Listener(
                    "public",
                    self.app,
                    "127.0.0.1",
                    self.port,
                    {"http": guarded_protocol(settings)},
                    sock,
                ),
            ),
            internal=("127.0.0.1", internal_port),
            instance_id="edge-thread",
            graceful_s=2.0,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> int:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            return await serve(self._plan, self._stop)

        self.exit_code = uvloop.run(main())

    def start(self) -> EdgeThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("the edge stopped while starting")
            try:
                with urllib.request.urlopen(self.internal_url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the edge did not become ready")

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # stopped already (a test may stop it before its fixture does)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)


def edge_settings(nats_url: str, upstream_url: str, spool_dir: Path, **extra: Any) -> EdgeSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "upstream_url": upstream_url,
        "upstream_api_keys": UPSTREAM_KEY,
        "edge_spool_dir": spool_dir,
        "edge_ping_interval_s": 10.0,
        "edge_disconnect_drain_s": 10.0,
        "edge_admission_timeout_s": 0.5,
    }
    values.update(extra)
    return EdgeSettings(**values)


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, step_s: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(step_s)
    raise AssertionError("condition not met in time")


async def stream_count(bus: Bus, stream: str = "USAGE") -> int:
    info = await bus.js.stream_info(stream)
    return int(info.state.messages)


async def usage_events(bus: Bus, expected: int, *, timeout_s: float = 15.0) -> list[UsageRecorded]:
    """The usage events in the stream once there are ``expected`` of them (and no more)."""

    async def enough() -> bool:
        return await stream_count(bus) >= expected

    await wait_for(enough, timeout_s=timeout_s)
    info = await bus.js.stream_info("USAGE")
    events: list[UsageRecorded] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg("USAGE", seq)
        assert msg.data is not None
        events.append(UsageRecorded.model_validate_json(msg.data))
    return events


async def billed_once(bus: Bus, billing: Billing) -> list[UsageRecorded]:
    """The usage events once every request ``billing`` admitted has one: exactly one each."""
    admitted = sorted(r.request_id for r in billing.requests)
    events = await usage_events(bus, len(admitted))
    assert sorted(e.request_id for e in events) == admitted, (admitted, events)
    return events


# The usage event's fields that decide what a request costs: equal for the same request on any route.
BILLED = frozenset(
    {
        "usage",
        "model",
        "requested_model",
        "plan",
        "account_id",
        "key_id",
        "outcome",
        "status_code",
        "admission",
        "client_disconnected",
    }
)


def sim_requests(sim_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(sim_url + "/_sim/requests", timeout=5) as answer:
        data: list[dict[str, Any]] = json.loads(answer.read())["data"]
    for entry in data:
        entry["raw"] = base64.b64decode(entry["body"])
    return data


def sim_post(sim_url: str, path: str, payload: dict[str, Any] | None = None) -> None:
    body = json.dumps(payload or {}).encode()
    request = urllib.request.Request(
        sim_url + path, data=body, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
