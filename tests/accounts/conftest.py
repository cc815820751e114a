"""Fixtures: the accounts app in-process (real PostgreSQL, real NATS) behind an httpx client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiapi_accounts.app import create_admin_app, create_app
from aiapi_accounts.service import Service
from aiapi_accounts.settings import AccountsSettings
from aiapi_shared.bus import Bus, BusTimeout, KeyValue
from aiapi_shared.events.records_v1 import KEYS_BUCKET
from pydantic import BaseModel, SecretStr
from starlette.applications import Starlette

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PASSWORD = "correct horse battery staple"


def make_settings(database_url: str, nats_url: str, **overrides: object) -> AccountsSettings:
    values: dict[str, object] = {
        "database_url": SecretStr(database_url),
        "nats_url": nats_url,
        "admin_token": SecretStr(ADMIN_TOKEN),
        # Cheap hashing keeps the suite fast; the parameters are the only difference.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "peer_timeout_s": 1.0,
        "last_used_resolution_s": 0,
    }
    values.update(overrides)
    return AccountsSettings(**values)  # type: ignore[arg-type]


@dataclass
class Running:
    """The service started, with a client on its public app and one on its operator app."""

    client: httpx.AsyncClient
    admin: httpx.AsyncClient
    service: Service
    kv: KeyValue
    bus: Bus
    app: Starlette  # the public app
    admin_app: Starlette

    async def new_account(self, email: str = "alice@example.com", plan: str = "basic") -> str:
        answer = await self.admin.post(
            "/admin/v1/accounts", json={"email": email, "plan": plan}, headers=ADMIN
        )
        assert answer.status_code == 201, answer.text
        account_id: str = answer.json()["id"]
        return account_id

    async def new_key(self, account_id: str, name: str = "laptop") -> dict[str, str]:
        answer = await self.admin.post(
            f"/admin/v1/accounts/{account_id}/keys", json={"name": name}, headers=ADMIN
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, str] = answer.json()
        return body

    async def signed_in(self, email: str = "bob@example.com") -> str:
        """Sign up and sign in on this client; returns the CSRF token."""
        up = await self.client.post(
            "/api/v1/auth/sign-up", json={"email": email, "password": PASSWORD}
        )
        assert up.status_code == 202, up.text
        inside = await self.client.post(
            "/api/v1/auth/sign-in", json={"email": email, "password": PASSWORD}
        )
        assert inside.status_code == 200, inside.text
        token: str = inside.json()["csrf_token"]
        return token


@pytest.fixture
async def running(database_url: str, nats_url: str, bus: Bus) -> AsyncIterator[Running]:
    async with run_app(make_settings(database_url, nats_url), bus) as app:
        yield app


class run_app:  # noqa: N801 (used like a function: ``async with run_app(...)``)
    """The service started as the runner starts it, its two apps behind ASGI clients."""

    def __init__(self, settings: AccountsSettings, bus: Bus) -> None:
        self._service = Service(settings)
        self._public = create_app(settings, self._service)
        self._admin = create_admin_app(settings, self._service)
        self._bus = bus
        self._clients: list[httpx.AsyncClient] = []

    def _client(self, app: Starlette) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://accounts.test"
        )
        self._clients.append(client)
        return client

    async def __aenter__(self) -> Running:
        await self._service.start()
        kv = await self._bus.ensure_kv(KEYS_BUCKET)
        return Running(
            self._client(self._public),
            self._client(self._admin),
            self._service,
            kv,
            self._bus,
            self._public,
            self._admin,
        )

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.aclose()
        await self._service.stop()


async def respond(
    bus: Bus, subject: str, reply: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """Answer ``subject`` like the peer service would (billing, payments); returns the requests."""
    seen: list[dict[str, Any]] = []

    async def handler(data: bytes) -> bytes:
        request = json.loads(data)
        seen.append(request)
        out = reply(request)
        if isinstance(out, BaseModel):
            return out.model_dump_json().encode()
        return json.dumps(out).encode()

    await bus.serve(subject, handler, queue="peer")
    await bus.client.flush()
    return seen


async def stream_events(
    bus: Bus, subject: str = "accounts.v1.>"
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message on ACCOUNTS so far: (subject, Nats-Msg-Id, body)."""
    sub = await bus.js.pull_subscribe(subject, stream="ACCOUNTS")
    found: list[tuple[str, str, dict[str, Any]]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except (BusTimeout, TimeoutError):  # nats-py raises the plain one at a tight deadline
                break
            for msg in msgs:
                found.append(
                    (msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data))
                )
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return found
