"""``GET /v1/models`` and ``/v1/models/{id}``: the models on sale, in one shape both SDKs parse.

Each entry carries Anthropic's fields (``type: "model"``, ``id``, ``display_name``,
``created_at``) and OpenAI's (``object: "model"``, ``created``, ``owned_by``); the list carries
Anthropic's paging fields (``has_more``, ``first_id``, ``last_id``) and OpenAI's
``object: "list"``. The full list and each model are rendered once, when the catalogue arrives.

Paging is Anthropic's: ``limit`` (1 to 1,000, default 20), ``after_id`` or ``before_id`` (the id
of a model on sale; the page immediately after or before it). The OpenAI list has no paging and
the OpenAI SDKs do not follow ``has_more``, so a request without ``limit`` and without an
``anthropic-version`` header (every Anthropic SDK sends one; no OpenAI client does) gets every
model on one page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
from aiapi_shared.catalogue import Catalogue, ModelEntry, is_pattern


def model_object(model: ModelEntry) -> dict[str, Any]:
    created = model.created_at
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": "anthropic",
    }


DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class PageError(ValueError):
    """A paging parameter the API would refuse (400 ``invalid_request_error``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _list_body(models: list[dict[str, Any]], has_more: bool) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": models,
            "has_more": has_more,
            "first_id": models[0]["id"] if models else None,
            "last_id": models[-1]["id"] if models else None,
        }
    )


def _listed(catalogue: Catalogue, include_aliases: bool) -> list[dict[str, Any]]:
    """The sold models, then (when the operator asks) each exact alias as an entry of its own
    that describes the model it is served as; a pattern alias names no id to list."""
    models = [model_object(m) for m in catalogue.models]
    if include_aliases:
        for alias in sorted(a for a in catalogue.aliases if not is_pattern(a)):
            target = catalogue.model(alias)
            if target is not None:
                models.append({**model_object(target), "id": alias})
    return models


class ModelsCatalogue:
    def __init__(self, catalogue: Catalogue, *, include_aliases: bool = False) -> None:
        self._catalogue = catalogue
        self._models = _listed(catalogue, include_aliases)
        self._position = {m["id"]: i for i, m in enumerate(self._models)}
        self.list_body = _list_body(self._models, has_more=False)
        self._by_id = {m["id"]: orjson.dumps(m) for m in self._models}

    def one(self, model_id: str) -> bytes | None:
        """A listed id's entry; an alias not listed answers as the model it is served as (as
        Anthropic answers an alias with the snapshot it points to)."""
        body = self._by_id.get(model_id)
        if body is None:
            target = self._catalogue.model(model_id)
            body = self._by_id.get(target.id) if target is not None else None
        return body

    def page(self, query_string: bytes, *, anthropic_client: bool) -> bytes:
        """The list page a query string asks for; raises :class:`PageError` for bad paging."""
        query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        raw_limit = query.get("limit", [None])[-1]
        after_id = query.get("after_id", [None])[-1]
        before_id = query.get("before_id", [None])[-1]
        if raw_limit is None and after_id is None and before_id is None and not anthropic_client:
            return self.list_body
        limit = _limit(raw_limit)
        if after_id is not None and before_id is not None:
            raise PageError("before_id", "after_id and before_id: send one of them, not both")
        if after_id is not None:
            start = self._cursor("after_id", after_id) + 1
            window = self._models[start : start + limit]
            return _list_body(window, has_more=start + limit < len(self._models))
        if before_id is not None:
            end = self._cursor("before_id", before_id)
            window = self._models[max(0, end - limit) : end]
            return _list_body(window, has_more=end - limit > 0)
        return _list_body(self._models[:limit], has_more=limit < len(self._models))

    def _cursor(self, param: str, model_id: str) -> int:
        position = self._position.get(model_id)
        if position is None:
            raise PageError(param, f"{param}: {model_id!r} is not a model on sale")
        return position


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise PageError("limit", f"limit: {raw!r} is not an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise PageError("limit", f"limit: must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit
