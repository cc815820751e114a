"""Helpers of the operator tests: operators made through the API by the bootstrap token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.accounts.conftest import ADMIN


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def new_operator(
    admin: httpx.AsyncClient,
    role: str,
    email: str | None = None,
    password: str | None = None,
    name: str | None = None,
) -> tuple[dict[str, Any], str]:
    """An operator made by the bootstrap identity, and a fresh API token of it."""
    body: dict[str, Any] = {
        "name": name or f"{role} person",
        "email": email or f"{role}@ops.example",
        "role": role,
    }
    if password is not None:
        body["password"] = password
    made = await admin.post("/admin/v1/operators", json=body, headers=ADMIN)
    assert made.status_code == 201, made.text
    operator: dict[str, Any] = made.json()
    token = await admin.post(
        f"/admin/v1/operators/{operator['id']}/tokens", json={"name": "laptop"}, headers=ADMIN
    )
    assert token.status_code == 201, token.text
    return operator, str(token.json()["token"])


async def audit(admin: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await admin.get("/admin/v1/audit", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["data"]
    return entries
