"""The Message Batches wire forms: the create body read and sized, the batch object as the
customer sees it, a results line read for billing. No I/O.

A batch's requests are read like ``/v1/messages`` bodies (:mod:`.body`): each model resolved to
the one sold (an alias replaced), ``max_tokens`` inserted when missing, options the catalogue
cannot price refused; each is then sized for the hold (:mod:`.estimate`). The batch object the
upstream returns is shown with the gateway's own id and a ``results_url`` on the gateway (the
SDKs fetch the results from that URL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiapi_shared.batches_api import BatchItemAsk, BatchItemResult
from aiapi_shared.catalogue import Catalogue, ModelEntry

from aiapi_edge.body import DEFAULT_MAX_TOKENS, parse_json_object
from aiapi_edge.errors import GatewayError, invalid_request
from aiapi_edge.estimate import estimate_input, server_tools_worst
from aiapi_edge.metering import usage_from_anthropic

MAX_REQUESTS = 100_000
_OUTCOMES = ("succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True, slots=True)
class BatchPlan:
    payload: bytes  # the body sent upstream
    items: list[BatchItemAsk]


def plan_batch(
    raw: bytes,
    *,
    resolve: Callable[[str], ModelEntry],
    check_priced: Callable[[Mapping[str, Any]], None],
    catalogue: Catalogue,
    moment: datetime,
) -> BatchPlan:
    """Read a create body; 400 (naming the request) for what the upstream could not take."""
    body = parse_json_object(raw)
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid_request("requests: a non-empty list of requests is required", "requests")
    if len(requests) > MAX_REQUESTS:
        raise invalid_request(f"requests: at most {MAX_REQUESTS} per batch", "requests")
    seen: set[str] = set()
    sent: list[dict[str, Any]] = []
    items: list[BatchItemAsk] = []
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            raise invalid_request(f"{where}: Input should be an object", where)
        custom_id, params = request.get("custom_id"), request.get("params")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 64:
            raise invalid_request(f"{where}.custom_id: 1 to 64 characters", f"{where}.custom_id")
        if custom_id in seen:
            raise invalid_request(
                f"{where}.custom_id: duplicate {custom_id!r}", f"{where}.custom_id"
            )
        seen.add(custom_id)
        if not isinstance(params, dict):
            raise invalid_request(f"{where}.params: Field required", f"{where}.params")
        try:
            item, params = _item(params, custom_id, where, resolve, check_priced, catalogue, moment)
        except GatewayError as error:  # name the request the refusal is about
            if error.message.startswith(where):
                raise
            raise invalid_request(f"{where}.params: {error.message}", f"{where}.params") from None
        items.append(item)
        sent.append({**request, "params": params})
    return BatchPlan(orjson.dumps({**body, "requests": sent}), items)


def _item(
    params: dict[str, Any],
    custom_id: str,
    where: str,
    resolve: Callable[[str], ModelEntry],
    check_priced: Callable[[Mapping[str, Any]], None],
    catalogue: Catalogue,
    moment: datetime,
) -> tuple[BatchItemAsk, dict[str, Any]]:
    requested = params.get("model")
    if not isinstance(requested, str) or not requested:
        raise invalid_request(f"{where}.params.model: Field required", f"{where}.params.model")
    model = resolve(requested)
    params = {**params, "model": model.id}
    max_tokens = params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid_request(
            f"{where}.params.max_tokens: Input should be a positive integer",
            f"{where}.params.max_tokens",
        )
    check_priced(params)
    size = len(orjson.dumps(params))
    item = BatchItemAsk(
        custom_id=custom_id,
        requested_model=requested,
        model=model.id,
        estimated_input_tokens=estimate_input(params, size, model.context_window),
        max_tokens=max_tokens,
        server_tools_nano=server_tools_worst(params, catalogue, moment),
    )
    return item, params


def public_batch(snapshot: Mapping[str, Any], batch_id: str, base_url: str) -> dict[str, Any]:
    """The upstream's batch object with the gateway's id and results URL."""
    shown = {**snapshot, "id": batch_id}
    if shown.get("results_url"):
        shown["results_url"] = f"{base_url}/v1/messages/batches/{batch_id}/results"
    return shown


def read_result(line: bytes) -> BatchItemResult | None:
    """One results line: its outcome and, when it succeeded, the usage reported (None for a
    line that is not a result: blank, or not JSON the upstream would write)."""
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    result = parsed.get("result") if isinstance(parsed, dict) else None
    custom_id = parsed.get("custom_id") if isinstance(parsed, dict) else None
    if not isinstance(result, dict) or not isinstance(custom_id, str):
        return None
    outcome = result.get("type")
    if outcome not in _OUTCOMES:
        return None
    usage = None
    message = result.get("message")
    if outcome == "succeeded" and isinstance(message, dict):
        reported = message.get("usage")
        usage = usage_from_anthropic(reported if isinstance(reported, dict) else {})
    return BatchItemResult(custom_id=custom_id, outcome=outcome, usage=usage)
