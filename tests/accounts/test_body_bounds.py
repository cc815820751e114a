"""Request bodies are bounded at 64 KiB before anything is parsed: a declared length over it is
refused without reading, and a streamed body is cut off at the bound (docs/accounts.md)."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_accounts.http import MAX_BODY_BYTES

from .conftest import ADMIN, Running

ROUTES = [
    ("/api/v1/auth/sign-up", {}),
    ("/admin/v1/accounts", ADMIN),
]


def scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8081),
    }


async def call(
    running: Running, path: str, headers: dict[str, str], chunks: Any
) -> tuple[int, Any]:
    """Run one request through the ASGI app; ``chunks`` is what ``receive`` hands out."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(chunks)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = running.admin_app if path.startswith("/admin/") else running.app
    await app(scope(path, headers), receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body


@pytest.mark.parametrize(("path", "auth"), ROUTES)
async def test_a_declared_length_over_64_kib_is_refused_unread(
    running: Running, path: str, auth: dict[str, str]
) -> None:
    def never() -> Any:
        raise AssertionError("the body was read")
        yield  # pragma: no cover

    headers = {**auth, "content-type": "application/json", "content-length": str(10 << 20)}
    status, body = await call(running, path, headers, never())
    assert status == 413
    assert b'"request_too_large"' in body


@pytest.mark.parametrize(("path", "auth"), ROUTES)
async def test_a_streamed_body_stops_at_the_bound(
    running: Running, path: str, auth: dict[str, str]
) -> None:
    handed: list[int] = []

    def endless() -> Any:
        while True:
            handed.append(1)
            yield {"type": "http.request", "body": b" " * 16384, "more_body": True}

    headers = {**auth, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, body = await call(running, path, headers, endless())
    assert status == 413
    assert b'"request_too_large"' in body
    assert len(handed) * 16384 <= MAX_BODY_BYTES + 16384


async def test_a_body_at_the_bound_is_still_read(running: Running) -> None:
    padding = " " * (MAX_BODY_BYTES - 64)
    body = ('{"email": "pad@example.com", "password": "correct horse battery"}' + padding)[
        :MAX_BODY_BYTES
    ]
    answer = await running.client.post(
        "/api/v1/auth/sign-up", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 202, answer.text
