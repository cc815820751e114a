"""Anthropic Messages SSE events → OpenAI Responses stream events, one event at a time.

:class:`ResponseEvents` is a pure state machine: the caller feeds each upstream SSE event's name and
JSON data and writes every returned dict as ``event: <type>`` / ``data: <json>``. Every event has
a ``sequence_number`` counting from 0. The sequence, as the official SDK's accumulator
(``responses.stream()``) requires it:

- first upstream event → ``response.created`` then ``response.in_progress``, each carrying the
  response object (``status: in_progress``, ``output: []``, ``usage: null``).
- ``thinking`` block → ``response.output_item.added`` (a ``reasoning`` item, empty summary); on the
  first non-empty ``thinking_delta`` ``response.reasoning_summary_part.added``, then one
  ``response.reasoning_summary_text.delta`` per delta; at its stop
  ``response.reasoning_summary_text.done`` and ``response.reasoning_summary_part.done`` (if a part
  was opened) and ``response.output_item.done`` with the whole item, its ``encrypted_content``
  sealing the block with its ``signature_delta`` (:mod:`.responses_items`).
  ``redacted_thinking`` → the added and done items only.
- ``text`` block → ``response.output_item.added`` (a ``message`` item, ``in_progress``, no
  content), ``response.content_part.added`` (an empty ``output_text``), one
  ``response.output_text.delta`` per ``text_delta``; at its stop ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done``.
- ``tool_use`` block → ``response.output_item.added`` (a ``function_call`` item, ``in_progress``,
  ``arguments: ""``), one ``response.function_call_arguments.delta`` per ``input_json_delta``
  (a block without pieces gets one delta with its start input as compact JSON, so the arguments
  are always valid JSON); at its stop ``response.function_call_arguments.done`` and
  ``response.output_item.done``.
- ``message_delta`` → nothing sent (its ``stop_reason`` and usage are kept).
- ``message_stop`` → ``response.completed``, or ``response.incomplete`` (``max_output_tokens``,
  ``content_filter``), with the whole response: every finished item and the usage.
- an ``error`` event → ``response.failed`` whose ``error`` has ``code`` (``rate_limit_exceeded``
  for a rate limit, ``insufficient_balance`` as the contract names it, else ``server_error``),
  ``message`` and ``type`` (the OpenAI error type), and the items finished so far; the stream is
  over. The caller ends a cut or truncated stream the same way with :meth:`ResponseEvents.failure`.
- ``ping``, unknown events and server-tool blocks produce nothing.

Output indices count the items produced, so they are 0, 1, 2... whatever the Anthropic block index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import openai_error_from_anthropic
from .response import compact_json
from .responses_items import (
    Namespaced,
    final_status,
    function_call_item,
    message_id,
    message_item,
    output_text,
    reasoning_id,
    reasoning_item,
    responses_usage,
    summary,
)
from .responses_response import response_object
from .usage import merge_usage

JSON = dict[str, Any]

# OpenAI error type → the Responses ``error.code`` of a failed response.
_FAILURE_CODES: Final[Mapping[str, str]] = {
    "rate_limit_error": "rate_limit_exceeded",
    "insufficient_balance": "insufficient_balance",
}


def failure_code(error_type: str) -> str:
    return _FAILURE_CODES.get(error_type, "server_error")


@dataclass(slots=True)
class _Item:
    """An open output item: its index, id and what its deltas added up to."""

    kind: str
    index: int
    item_id: str
    pieces: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""
    name: str = ""
    start_input: object = None
    part_open: bool = False


class ResponseEvents:
    """Translate one Anthropic event stream into Responses events. One per stream."""

    def __init__(
        self,
        resp_id: str,
        *,
        created_at: int,
        model: str,
        echo: Mapping[str, Any],
        namespaced: Namespaced | None = None,
    ) -> None:
        self._id = resp_id
        self._namespaced = namespaced
        self._created_at = created_at
        self._model = model
        self._echo = echo
        self._sequence = 0
        self._started = False
        self._finished = False
        self._open: dict[int, _Item] = {}
        self._done: list[JSON] = []
        self._count = 0
        self._usage: JSON = {}
        self._stop_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def usage(self) -> JSON:
        return self._usage

    def feed(self, name: str, data: Mapping[str, Any]) -> list[JSON]:
        """The events for one upstream event (``name`` is the SSE event name)."""
        if self._finished:
            return []
        out = self._start()
        if name == "message_start":
            message = data.get("message")
            if isinstance(message, Mapping):
                self._merge_usage(message.get("usage"))
        elif name == "content_block_start":
            out += self._block_start(data)
        elif name == "content_block_delta":
            out += self._block_delta(data)
        elif name == "content_block_stop":
            out += self._block_stop(data)
        elif name == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            self._merge_usage(data.get("usage"))
        elif name == "message_stop":
            out += self._complete()
        elif name == "error":
            error = openai_error_from_anthropic(500, data)["error"]
            out += self.failure(error["message"], error["type"])
        return out

    def failure(self, message: str, error_type: str = "api_error") -> list[JSON]:
        """``response.failed`` (after the opening events if none went out); ends the stream."""
        if self._finished:
            return []
        out = self._start()
        self._finished = True
        error = {"code": failure_code(error_type), "message": message, "type": error_type}
        response = self._response("failed", error=error)
        out.append(self._event("response.failed", {"response": response}))
        return out

    # -- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> list[JSON]:
        if self._started:
            return []
        self._started = True
        response = self._response("in_progress", usage=False)
        return [
            self._event("response.created", {"response": response}),
            self._event("response.in_progress", {"response": response}),
        ]

    def _complete(self) -> list[JSON]:
        self._finished = True
        status, incomplete = final_status(self._stop_reason)
        response = self._response(status, incomplete_details=incomplete)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [self._event(kind, {"response": response})]

    def _response(
        self,
        status: str,
        *,
        usage: bool = True,
        incomplete_details: JSON | None = None,
        error: JSON | None = None,
    ) -> JSON:
        return response_object(
            self._id,
            created_at=self._created_at,
            model=self._model,
            echo=self._echo,
            status=status,
            output=list(self._done) if status != "in_progress" else [],
            usage=responses_usage(self._usage) if usage else None,
            incomplete_details=incomplete_details,
            error=error,
        )

    # -- blocks -------------------------------------------------------------------------------

    def _block_start(self, data: Mapping[str, Any]) -> list[JSON]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        n = self._count
        if kind in ("thinking", "redacted_thinking"):
            item = _Item(str(kind), n, reasoning_id(self._id, n))
            added: JSON = {"id": item.item_id, "type": "reasoning", "summary": []}
        elif kind == "text":
            item = _Item("text", n, message_id(self._id, n))
            added = message_item(item.item_id, None, "in_progress")
        elif kind == "tool_use":
            call_id = str(block.get("id", ""))
            item = _Item("tool_use", n, "fc_" + call_id, name=str(block.get("name", "")))
            item.start_input = block.get("input")
            item.data = call_id
            added = function_call_item(call_id, item.name, "", "in_progress", self._namespaced)
        else:
            return []
        self._count += 1
        self._open[index] = item
        out = [self._item_event("response.output_item.added", item, {"item": added})]
        if kind == "redacted_thinking":
            item.data = str(block.get("data", ""))
        elif kind == "thinking":
            item.signature = str(block.get("signature", "") or "")
            out += self._thinking_piece(item, block.get("thinking"))
        elif kind == "text":
            part = {"content_index": 0, "part": output_text("")}
            out.append(self._item_event("response.content_part.added", item, part))
            out += self._text_piece(item, block.get("text"))
        return out

    def _block_delta(self, data: Mapping[str, Any]) -> list[JSON]:
        index = data.get("index")
        item = self._open.get(index) if isinstance(index, int) else None
        delta = data.get("delta")
        if item is None or not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and item.kind == "text":
            return self._text_piece(item, delta.get("text"))
        if kind == "thinking_delta" and item.kind == "thinking":
            return self._thinking_piece(item, delta.get("thinking"))
        if kind == "signature_delta" and item.kind == "thinking":
            if isinstance(delta.get("signature"), str):
                item.signature = delta["signature"]
            return []
        if kind == "input_json_delta" and item.kind == "tool_use":
            piece = delta.get("partial_json")
            if not isinstance(piece, str) or not piece:
                return []
            item.pieces.append(piece)
            return [
                self._item_event("response.function_call_arguments.delta", item, {"delta": piece})
            ]
        return []

    def _text_piece(self, item: _Item, text: object) -> list[JSON]:
        if not isinstance(text, str) or not text:
            return []
        item.pieces.append(text)
        payload = {"content_index": 0, "delta": text, "logprobs": []}
        return [self._item_event("response.output_text.delta", item, payload)]

    def _thinking_piece(self, item: _Item, text: object) -> list[JSON]:
        if not isinstance(text, str) or not text:
            return []
        out: list[JSON] = []
        if not item.part_open:
            item.part_open = True
            part = {"summary_index": 0, "part": {"type": "summary_text", "text": ""}}
            out.append(self._item_event("response.reasoning_summary_part.added", item, part))
        item.pieces.append(text)
        payload = {"summary_index": 0, "delta": text}
        out.append(self._item_event("response.reasoning_summary_text.delta", item, payload))
        return out

    def _block_stop(self, data: Mapping[str, Any]) -> list[JSON]:
        index = data.get("index")
        item = self._open.pop(index, None) if isinstance(index, int) else None
        if item is None:
            return []
        out: list[JSON] = []
        text = "".join(item.pieces)
        done: JSON
        if item.kind == "text":
            payload = {"content_index": 0, "text": text, "logprobs": []}
            out.append(self._item_event("response.output_text.done", item, payload))
            part = {"content_index": 0, "part": output_text(text)}
            out.append(self._item_event("response.content_part.done", item, part))
            done = message_item(item.item_id, text)
        elif item.kind == "tool_use":
            if not item.pieces:
                start = item.start_input if isinstance(item.start_input, Mapping) else {}
                text = compact_json(start)
                delta = {"delta": text}
                out.append(self._item_event("response.function_call_arguments.delta", item, delta))
            done = function_call_item(item.data, item.name, text, namespaced=self._namespaced)
            arguments = {"name": done["name"], "arguments": text}
            out.append(self._item_event("response.function_call_arguments.done", item, arguments))
        else:
            if item.kind == "thinking":
                block: JSON = {"type": "thinking", "thinking": text, "signature": item.signature}
            else:
                block = {"type": "redacted_thinking", "data": item.data}
            if item.part_open:
                payload = {"summary_index": 0, "text": text}
                out.append(self._item_event("response.reasoning_summary_text.done", item, payload))
                part = {"summary_index": 0, "part": summary(text)[0]}
                out.append(self._item_event("response.reasoning_summary_part.done", item, part))
            done = reasoning_item(item.item_id, block)
        self._done.append(done)
        out.append(self._item_event("response.output_item.done", item, {"item": done}))
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, Mapping):
            self._usage = merge_usage(self._usage, usage)

    def _event(self, kind: str, payload: JSON) -> JSON:
        event = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return event

    def _item_event(self, kind: str, item: _Item, payload: JSON) -> JSON:
        ids: JSON = {"output_index": item.index}
        if kind not in ("response.output_item.added", "response.output_item.done"):
            ids["item_id"] = item.item_id
        return self._event(kind, {**ids, **payload})
