"""The Responses API's output items and usage, built from Anthropic blocks: one shape for both the
JSON answer (:mod:`.responses_response`) and the stream (:mod:`.responses_stream`).

- A ``thinking`` block → a ``reasoning`` item: its text as the one ``summary_text`` of ``summary``
  (``summary: []`` when the text is empty), and the whole block in ``encrypted_content``
  (:func:`seal_thinking`). A ``redacted_thinking`` block → a ``reasoning`` item with an empty
  summary and the block in ``encrypted_content``.
- A ``text`` block → a ``message`` item (``role: assistant``, ``status: completed``) with one
  ``output_text`` part (``annotations: []``, ``logprobs: []``).
- A ``tool_use`` block → a ``function_call`` item: ``call_id`` is the ``tool_use`` id, ``arguments``
  the input as compact JSON, ``id`` is ``fc_`` + the ``tool_use`` id. A function of a ``namespace``
  tool is offered upstream as ``<namespace>__<name>`` (:func:`namespaced_name`) and its calls come
  back with ``namespace`` and ``name`` apart again.
- Item ids: ``rs_<response>_<n>`` and ``msg_<response>_<n>``, ``n`` being the item's output index,
  so the stream and the JSON answer name the same items alike.
- Usage (:func:`responses_usage`): ``input_tokens`` = input + cache read + cache write (the chat
  route's sum, :func:`.usage.openai_usage`), ``input_tokens_details.cached_tokens`` = cache read,
  ``input_tokens_details.cache_write_tokens`` = cache write, ``output_tokens``,
  ``output_tokens_details.reasoning_tokens`` = thinking tokens when the upstream reports them,
  else 0 (the field is required), ``total_tokens``.

Why the whole block is sealed, not only its signature: the upstream accepts a thinking block back
only byte-identical, text and signature. The Responses API treats ``encrypted_content`` as the
reasoning's opaque state and ``summary`` as display text a client may drop or not send back, so
the block travels in ``encrypted_content`` alone and comes back exactly as the upstream wrote it.
The seal is base64url (unpadded) of the block's JSON behind a version prefix; it is not secret
(the client saw the thinking already) and it needs no integrity check: the upstream verifies the
signature inside it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

import orjson

from .response import compact_json
from .usage import openai_usage

JSON = dict[str, Any]

SEAL_PREFIX: Final = "aiapi.thinking.v1."
_THINKING_TYPES: Final = frozenset({"thinking", "redacted_thinking"})


def seal_thinking(block: Mapping[str, Any]) -> str:
    """``encrypted_content`` for an Anthropic thinking or redacted-thinking block."""
    raw = orjson.dumps(dict(block))
    return SEAL_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def open_thinking(sealed: object) -> JSON | None:
    """The thinking block inside ``encrypted_content``; None if it is not a seal of this gateway
    (e.g. another provider's reasoning), which the caller then leaves out."""
    if not isinstance(sealed, str) or not sealed.startswith(SEAL_PREFIX):
        return None
    text = sealed[len(SEAL_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        block = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(block, dict) or block.get("type") not in _THINKING_TYPES:
        return None
    if block["type"] == "thinking" and not (
        isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    ):
        return None
    if block["type"] == "redacted_thinking" and not isinstance(block.get("data"), str):
        return None
    return block


def response_id(request_id: str) -> str:
    """``resp_<hex>`` from the edge's ``req_<hex>``: one id names the request and its response."""
    return "resp_" + request_id.removeprefix("req_")


def _base(resp_id: str) -> str:
    return resp_id.removeprefix("resp_")


def reasoning_id(resp_id: str, index: int) -> str:
    return f"rs_{_base(resp_id)}_{index}"


def message_id(resp_id: str, index: int) -> str:
    return f"msg_{_base(resp_id)}_{index}"


def function_call_id(call_id: str) -> str:
    return "fc_" + call_id


def summary(text: str) -> list[JSON]:
    return [{"type": "summary_text", "text": text}] if text else []


def reasoning_item(item_id: str, block: Mapping[str, Any]) -> JSON:
    text = block.get("thinking") if block.get("type") == "thinking" else ""
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": summary(text if isinstance(text, str) else ""),
        "encrypted_content": seal_thinking(block),
    }


def output_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str = "completed") -> JSON:
    content = [] if text is None else [output_text(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


# An upstream tool name → ``(namespace, name)`` for the tools of a ``namespace`` tool.
Namespaced = Mapping[str, tuple[str, str]]


def namespaced_name(namespace: str, name: str) -> str:
    """The upstream name of a function inside a ``namespace`` tool (the upstream has no
    namespaces; tool names allow only letters, digits, ``_`` and ``-``)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


NAMESPACE_SEPARATOR: Final = "__"


def function_call_item(
    call_id: str,
    name: str,
    arguments: str,
    status: str = "completed",
    namespaced: Namespaced | None = None,
) -> JSON:
    item: JSON = {
        "id": function_call_id(call_id),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    if namespaced and name in namespaced:
        item["namespace"], item["name"] = namespaced[name]
    return item


def output_item(
    resp_id: str, index: int, block: Mapping[str, Any], namespaced: Namespaced | None = None
) -> JSON | None:
    """The output item at ``index`` for one Anthropic content block (None: no Responses form)."""
    kind = block.get("type")
    if kind in _THINKING_TYPES:
        return reasoning_item(reasoning_id(resp_id, index), block)
    if kind == "text":
        text = block.get("text")
        return message_item(message_id(resp_id, index), text if isinstance(text, str) else "")
    if kind == "tool_use":
        return function_call_item(
            str(block.get("id", "")),
            str(block.get("name", "")),
            compact_json(block.get("input", {})),
            namespaced=namespaced,
        )
    return None


def responses_usage(usage: Mapping[str, Any], thinking_tokens: int | None = None) -> JSON:
    """The Responses ``usage`` object for an Anthropic ``usage`` object."""
    chat = openai_usage(usage, thinking_tokens)
    details = chat["prompt_tokens_details"]
    reasoning = chat.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": details["cached_tokens"],
            "cache_write_tokens": details["cache_write_tokens"],
        },
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": chat["total_tokens"],
    }


# Anthropic ``stop_reason`` → the Responses ``incomplete_details.reason`` (others complete).
INCOMPLETE_REASONS: Final[Mapping[str, str]] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def final_status(stop_reason: object) -> tuple[str, JSON | None]:
    """``(status, incomplete_details)`` for an Anthropic ``stop_reason``."""
    reason = INCOMPLETE_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}
