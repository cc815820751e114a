"""``GET /v1/models`` and ``/v1/models/{id}``: the models on sale, in one shape both SDKs parse.

Each entry carries Anthropic's fields (``type: "model"``, ``id``, ``display_name``,
``created_at``) and OpenAI's (``object: "model"``, ``created``, ``owned_by``); the list carries
Anthropic's paging fields (``has_more``, ``first_id``, ``last_id``) and OpenAI's
``object: "list"``. The bodies are rendered once, when the edge starts.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiapi_shared.catalogue import Catalogue, ModelEntry


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


class ModelsCatalogue:
    def __init__(self, catalogue: Catalogue) -> None:
        models = [model_object(m) for m in catalogue.models]
        self.list_body = orjson.dumps(
            {
                "object": "list",
                "data": models,
                "has_more": False,
                "first_id": models[0]["id"] if models else None,
                "last_id": models[-1]["id"] if models else None,
            }
        )
        self._by_id = {m["id"]: orjson.dumps(m) for m in models}

    def one(self, model_id: str) -> bytes | None:
        return self._by_id.get(model_id)
