"""Anthropic Messages response → OpenAI Responses ``response`` object.

- ``id`` is ``resp_`` + the edge's request id (:func:`.responses_items.response_id`); ``object`` is
  ``response``; ``created_at`` the second the request came in; ``model`` the model the client asked
  for.
- ``output``: one item per content block, in the upstream's order (:func:`.responses_items.output_item`:
  thinking → ``reasoning``, text → ``message``, tool use → ``function_call``); server-tool blocks
  have no Responses form and are left out.
- ``status``: ``completed``, or ``incomplete`` with ``incomplete_details.reason``
  ``max_output_tokens`` (``stop_reason`` ``max_tokens`` or ``model_context_window_exceeded``) or
  ``content_filter`` (``refusal``) per :func:`.responses_items.final_status`.
- ``usage``: :func:`.responses_items.responses_usage`.
- The request's settings are repeated (:attr:`.responses_request.ResponsesRequest.echo`);
  ``error`` is ``null``; ``store`` is ``false`` (nothing is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .responses_items import Namespaced, final_status, output_item, responses_usage

JSON = dict[str, Any]


def response_object(
    resp_id: str,
    *,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    status: str,
    output: list[JSON],
    usage: JSON | None = None,
    incomplete_details: JSON | None = None,
    error: JSON | None = None,
) -> JSON:
    """The ``response`` object in any state (the stream sends it in progress, then final)."""
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "model": model,
        "output": output,
        **echo,
        "usage": usage,
    }


def to_response(
    message: Mapping[str, Any],
    *,
    resp_id: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    namespaced: Namespaced | None = None,
) -> JSON:
    """Translate a non-stream Anthropic message into a ``response`` object."""
    output: list[JSON] = []
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if isinstance(block, Mapping):
            item = output_item(resp_id, len(output), block, namespaced)
            if item is not None:
                output.append(item)
    status, incomplete = final_status(message.get("stop_reason"))
    usage = message.get("usage")
    return response_object(
        resp_id,
        created_at=created_at,
        model=model,
        echo=echo,
        status=status,
        output=output,
        usage=responses_usage(usage if isinstance(usage, Mapping) else {}),
        incomplete_details=incomplete,
    )
