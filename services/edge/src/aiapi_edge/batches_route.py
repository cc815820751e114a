"""``/v1/messages/batches``: Message Batches, passed to the upstream's batch API.

Create holds the batch's worst case at the batch price in billing before the upstream sees it
(402 when the balance cannot cover it), then creates it upstream with one pool key and records
which; every later call about the batch goes through that key (:mod:`.batch_tracker`). Billing
keeps the batches: the customer sees only their own (another account's id is a 404, as an
unknown one), and the list is billing's, newest first, paged like the upstream's. Results stream
from the upstream to the client as they arrive. Each succeeded request is billed when the batch
ends, by whichever of the customer's retrieve or a tracker sees the end first.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiapi_shared import batches_api as api
from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import KeyRecord

from aiapi_edge.admission import insufficient_balance
from aiapi_edge.anthropic_route import with_request_id
from aiapi_edge.asgi import Headers, Scope, Send, header, send_whole
from aiapi_edge.batch_billing import BatchBilling
from aiapi_edge.batch_form import plan_batch, public_batch
from aiapi_edge.batch_tracker import BatchTracker, UpstreamAnswered, read_object
from aiapi_edge.errors import (
    GatewayError,
    authentication_failed,
    invalid_request,
    upstream_failed,
)
from aiapi_edge.gateway import Gateway
from aiapi_edge.headers import client_response_headers
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.upstream import Upstream

PREFIX = "/api/proxy"
PATH = "/v1/messages/batches"
JSONL = b"application/x-jsonl"
BIND_ATTEMPTS = 4


def new_batch_id() -> str:
    return f"msgbatch_{secrets.token_hex(12)}"


def base_url(scope: Scope) -> str:
    """The URL the client reached this route family at (results URLs point back at it)."""
    forwarded = (header(scope, b"x-forwarded-proto") or b"").split(b",")[0].strip()
    scheme = forwarded.decode() if forwarded in (b"http", b"https") else scope["scheme"]
    host = header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}".encode()
    prefix = PREFIX if scope["path"].startswith(PREFIX) else ""
    return f"{scheme}://{host.decode('latin-1')}{prefix}"


def _refusal(reply: api.BatchOpenReply) -> GatewayError:
    if reply.decision == "insufficient_balance":
        return insufficient_balance("Your balance is too low for this batch.")
    if reply.decision == "account_inactive":
        return authentication_failed("This account is suspended.")
    return invalid_request(reply.message or "This batch cannot be priced.")


def _batch_object(data: bytes) -> dict[str, Any] | None:
    """The upstream's new batch, or None for an answer that is not one (no id)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    ok = isinstance(parsed, dict) and isinstance(parsed.get("id"), str)
    return parsed if ok else None


class BatchesRoute:
    def __init__(
        self, gateway: Gateway, upstream: Upstream, billing: BatchBilling, tracker: BatchTracker
    ) -> None:
        self._gw = gateway
        self._upstream = upstream
        self._billing = billing
        self._tracker = tracker

    async def _json(self, send: Send, request_id: str, payload: Any) -> None:
        headers: Headers = [(b"request-id", request_id.encode())]
        await send_whole(send, 200, orjson.dumps(payload), headers)

    @staticmethod
    async def _upstream_error(send: Send, request_id: str, refused: UpstreamAnswered) -> None:
        body = with_request_id(refused.status, refused.body, request_id)
        headers = client_response_headers(refused.headers, request_id.encode())
        await send_whole(send, refused.status, body, headers, content_type=None)

    async def create(
        self, scope: Scope, send: Send, raw: bytes, request_id: str, caller: KeyRecord
    ) -> None:
        moment = datetime.now(UTC)
        gw = self._gw
        plan = plan_batch(
            raw,
            resolve=gw.resolve_model,
            check_priced=lambda params: gw.check_priced(scope, b"", params),
            catalogue=gw.catalogue,
            moment=moment,
        )
        batch_id = new_batch_id()
        await self._hold(batch_id, caller, moment, plan.items)
        try:
            answer = await self._upstream.send(PATH, plan.payload, scope["headers"])
        except GatewayError:
            await self._billing.abandon(batch_id, "no upstream could take it")
            raise
        try:
            data = await answer.read()
        except HttpClientError as exc:
            await self._billing.abandon(batch_id, "the upstream's answer was cut")
            raise upstream_failed() from exc
        finally:
            answer.close()
        if answer.status != 200:
            await self._billing.abandon(batch_id, f"upstream answered {answer.status}")
            await self._upstream_error(
                send, request_id, UpstreamAnswered(answer.status, data, answer.headers)
            )
            return
        snapshot = _batch_object(data)
        if snapshot is None:
            await self._billing.abandon(batch_id, "the upstream's answer was not a batch")
            raise upstream_failed("The upstream answered oddly.")
        await self._bind(
            api.BatchBindCommand(
                batch_id=batch_id,
                upstream_id=str(snapshot["id"]),
                upstream_key=self._upstream.pool.key(answer.key_index).fingerprint,
                snapshot=snapshot,
            )
        )
        await self._json(send, request_id, public_batch(snapshot, batch_id, base_url(scope)))

    async def _hold(
        self,
        batch_id: str,
        caller: KeyRecord,
        moment: datetime,
        items: list[api.BatchItemAsk],
    ) -> None:
        """Stage the requests with billing in chunks, then take the hold (or raise the refusal)."""
        size = self._tracker.chunk
        chunks = [items[at : at + size] for at in range(0, len(items), size)]
        for index, chunk in enumerate(chunks):
            final = index == len(chunks) - 1
            reply = await self._billing.open(
                api.BatchOpenCommand(
                    batch_id=batch_id,
                    account_id=caller.account_id,
                    key_id=caller.key_id,
                    plan=caller.plan,
                    started_at=moment,
                    items=chunk,
                    final=final,
                    total_items=len(items),
                )
            )
            if reply.decision not in ("admit", "staged"):
                raise _refusal(reply)

    async def _bind(self, command: api.BatchBindCommand) -> None:
        """Record the upstream's id; retried a few times, because a batch the upstream runs but
        billing never learns of is abandoned (its hold released) and would run unbilled."""
        for attempt in range(BIND_ATTEMPTS):
            try:
                await self._billing.bind(command)
                return
            except GatewayError:
                if attempt == BIND_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)

    async def page(self, scope: Scope, send: Send, request_id: str, caller: KeyRecord) -> None:
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        limit_text = query.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            raise invalid_request("limit: Input should be between 1 and 1000", "limit")
        reply = await self._billing.page(
            api.BatchListQuery(
                account_id=caller.account_id,
                limit=int(limit_text),
                before_id=query.get("before_id"),
                after_id=query.get("after_id"),
            )
        )
        base = base_url(scope)
        data = [public_batch(r.snapshot or {}, r.batch_id, base) for r in reply.data]
        await self._json(
            send,
            request_id,
            {
                "data": data,
                "has_more": reply.has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    async def one(
        self, scope: Scope, send: Send, request_id: str, caller: KeyRecord, rest: str
    ) -> None:
        """``{id}`` (GET, DELETE), ``{id}/cancel`` (POST), ``{id}/results`` (GET)."""
        batch_id, _, action = rest.partition("/")
        method = scope["method"]
        known = {("", "GET"), ("", "DELETE"), ("cancel", "POST"), ("results", "GET")}
        if not batch_id or (action, method) not in known:
            raise GatewayError(Problem.NOT_FOUND, f"Not found: {method} {scope['path']}")
        record = await self._billing.get(caller.account_id, batch_id)
        try:
            if action == "results":
                await self._results(scope, send, request_id, record)
                return
            if action == "cancel":
                answer = await self._tracker.call(record, "POST", "cancel", scope["headers"])
                snapshot = await read_object(answer)
                await self._tracker.observe(record, snapshot)
            elif method == "DELETE":
                await self._delete(scope, send, request_id, record)
                return
            elif record.state == "in_progress":
                snapshot = await self._tracker.look(record, scope["headers"])
            else:
                snapshot = record.snapshot or {}
        except UpstreamAnswered as refused:
            await self._upstream_error(send, request_id, refused)
            return
        await self._json(send, request_id, public_batch(snapshot, batch_id, base_url(scope)))

    async def _delete(
        self, scope: Scope, send: Send, request_id: str, record: api.BatchRecord
    ) -> None:
        if record.state == "in_progress":
            await self._tracker.look(record, scope["headers"])  # settles a batch that ended
        await read_object(await self._tracker.call(record, "DELETE", headers=scope["headers"]))
        await self._billing.delete(record.account_id, record.batch_id)
        await self._json(send, request_id, {"id": record.batch_id, "type": "message_batch_deleted"})

    async def _results(
        self, scope: Scope, send: Send, request_id: str, record: api.BatchRecord
    ) -> None:
        answer = await self._tracker.call(record, "GET", "results", scope["headers"])
        try:
            if answer.status != 200:
                await read_object(answer)  # raises with the upstream's refusal
            headers: Headers = [
                (b"content-type", JSONL),
                (b"request-id", request_id.encode()),
                (b"content-disposition", f"attachment; filename={record.batch_id}_results.jsonl".encode()),
            ]  # fmt: skip
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while chunk := await answer.read_chunk():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            answer.close()
