"""The route table and the OpenAPI document generated from it (one source for both).

Each :class:`Endpoint` names its handler, its body and answer models and the error statuses it
may return; :func:`openapi_document` turns the table into OpenAPI 3.1 with the models' JSON
schemas, and :func:`docs_page` renders a self-contained HTML page (no scripts, no CDN).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.schemas import ErrorAnswer

Handler = Callable[[Request], Awaitable[Response]]
Auth = Literal["admin", "session", "none"]

_ERROR_MEANING = {
    400: "invalid request",
    401: "not authenticated",
    402: "insufficient balance (from billing)",
    403: "forbidden (CSRF token missing or wrong, account suspended, or a read-only operator)",
    404: "not found",
    409: "conflict",
    429: "too many attempts; see retry-after",
    503: "a peer service (billing or payments) is not reachable",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    tag: str
    body: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    many: bool = False  # the answer is a JSON array of ``answer``
    status: int = 200
    errors: tuple[int, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # request headers worth documenting


def _models(endpoints: Sequence[Endpoint]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorAnswer": ErrorAnswer}
    for e in endpoints:
        for model in (e.body, e.answer):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def openapi_document(
    endpoints: Sequence[Endpoint], *, version: str, title: str, about: str
) -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if _is_body(m, endpoints) else "serialization") for m in _models(endpoints)
    ]
    _, schemas = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": f"{about} Errors: "
            '{"error": {"type", "message"}}. USD amounts are decimal strings.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "aiapi_session"},
                "operator_session": {"type": "apiKey", "in": "cookie", "name": "aiapi_operator"},
            },
        },
    }


def _is_body(model: type[BaseModel], endpoints: Sequence[Endpoint]) -> bool:
    return any(e.body is model for e in endpoints)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": e.summary, "tags": [e.tag], "responses": {}}
    if e.auth == "admin":
        # A bearer token (bootstrap or operator), or the console's cookie.
        op["security"] = [{"admin": []}, {"operator_session": []}]
    elif e.auth != "none":
        op["security"] = [{e.auth: []}]
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(e.path)
    ]
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in e.headers
    ]
    if params:
        op["parameters"] = params
    if e.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(e.body)}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if e.answer is not None:
        schema: dict[str, Any] = _ref(e.answer)
        if e.many:
            schema = {"type": "array", "items": schema}
        ok["content"] = {"application/json": {"schema": schema}}
    op["responses"][str(e.status)] = ok
    implied = {401} if e.auth != "none" else set()
    if e.auth == "admin" and e.method not in ("GET", "HEAD"):
        implied.add(403)  # the support role, or a console write without its CSRF token
    for status in sorted(set(e.errors) | implied):
        op["responses"][str(status)] = {
            "description": _ERROR_MEANING.get(status, "error"),
            "content": {"application/json": {"schema": _ref(ErrorAnswer)}},
        }
    return op


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def docs_page(endpoints: Sequence[Endpoint]) -> str:
    rows = "\n".join(
        f"<tr><td><code>{e.method}</code></td><td><code>{html.escape(e.path)}</code></td>"
        f"<td>{e.auth}</td><td>{html.escape(e.summary)}</td>"
        f"<td>{e.body.__name__ if e.body else ''}</td><td>{e.status} "
        f"{(e.answer.__name__ + ('[]' if e.many else '')) if e.answer else ''}</td></tr>"
        for e in endpoints
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiapi accounts API</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left}}</style></head><body>
<h1>aiapi accounts API</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).
Operator routes take <code>Authorization: Bearer $AIAPI_ADMIN_TOKEN</code>; customer routes take
the session cookie from sign-in, and writes also the <code>X-CSRF-Token</code> header.
Errors are <code>{{"error": {{"type", "message"}}}}</code>.</p>
<table><tr><th>method</th><th>path</th><th>auth</th><th>what</th><th>body</th><th>answer</th></tr>
{rows}
</table></body></html>
"""
