"""Anthropic Messages SSE events → OpenAI ``chat.completion.chunk`` objects, one event at a time.

:class:`ChunkTranslator` is a pure state machine: the caller parses each upstream SSE event, feeds
its name and JSON data, and writes every returned dict as ``data: <json>``; after the stream it
writes ``data: [DONE]`` (unless an error dict was returned, after which the stream just closes).

The chunks are shaped for the official SDKs' stream accumulators, which merge deltas by
concatenating strings and merging list entries by their ``index``:

- ``role: "assistant"`` (with ``content: ""``) appears once, in the first chunk (``message_start``),
  as OpenAI's own streams begin. So a streamed answer of only tool calls accumulates to
  ``content: ""`` where the non-stream form says ``null``: the first chunk goes out before the
  upstream has said which kind of answer it will be.
- ``text_delta`` → ``delta.content``.
- each ``tool_use`` block → one tool call whose ``index`` is its ordinal among the tool calls
  (0, 1, 2... whatever the Anthropic block index). Its ``id``, ``type`` and ``function.name`` appear
  only in its first delta, with ``arguments: ""``; every ``input_json_delta`` then adds its
  ``partial_json`` to ``function.arguments``. A tool call that got no input pieces gets ``"{}"``
  (or its start input) when its block stops, so the arguments are always valid JSON.
- With legacy ``functions`` (``legacy_functions``) the first ``tool_use`` block is
  ``delta.function_call`` instead (``name`` and ``arguments: ""`` first, then the argument pieces)
  and the finish reason ``function_call``.
- ``thinking_delta`` → ``delta.reasoning_content``. When a thinking block stops, the whole block
  (text and signature) is sent once as ``delta.thinking_blocks: [{"index": i, "type": "thinking",
  "thinking", "signature"}]``; a ``redacted_thinking`` block as ``{"index": i, "type":
  "redacted_thinking", "data"}``. ``i`` is the block's ordinal among thinking blocks, so the
  accumulated list equals the non-stream ``thinking_blocks``.
- ``message_stop`` → a chunk with an empty delta and the ``finish_reason`` of the ``stop_reason``
  seen in ``message_delta``; then, when ``include_usage``, one chunk with ``choices: []`` and the
  usage. With ``include_usage`` every other chunk carries ``usage: null``.
- an ``error`` event → ``{"error": {"message", "type", "param", "code"}}`` and the stream is over.
- ``ping``, unknown events, citations and server-tool blocks produce nothing.

:attr:`ChunkTranslator.usage` is the Anthropic usage seen so far (``message_start``'s, with each
``message_delta``'s values replacing earlier ones), for the caller's metering.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import openai_error_body, openai_error_from_anthropic
from .response import compact_json, completion_id, finish_reason, legacy_finish_reason
from .usage import merge_usage, openai_usage

JSON = dict[str, Any]


@dataclass(slots=True)
class _Block:
    """What the translator remembers about one open Anthropic content block."""

    kind: str
    ordinal: int = 0
    pieces: list[str] = field(default_factory=list)
    signature: str = ""
    start_input: object = None
    arguments_sent: bool = False
    data: str = ""


class ChunkTranslator:
    """Translate one Anthropic event stream into OpenAI chunks. Not thread-safe; one per stream."""

    def __init__(
        self,
        *,
        created: int,
        request_model: str,
        include_usage: bool = False,
        completion_id: str | None = None,
        legacy_functions: bool = False,
    ) -> None:
        self._legacy = legacy_functions
        self._created = created
        self._model = request_model
        self._include_usage = include_usage
        self._id = completion_id
        self._role_sent = False
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._thinking_blocks = 0
        self._stop_reason: str | None = None
        self._usage: JSON = {}
        self._finished = False

    @property
    def usage(self) -> JSON:
        """The latest Anthropic usage (``input_tokens``, ``output_tokens``, cache fields...)."""
        return dict(self._usage)

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def done(self) -> bool:
        """True once the final chunks or an error have been produced."""
        return self._finished

    def feed(self, event: str, data: Mapping[str, Any]) -> list[JSON]:
        """Translate one upstream event; returns the dicts to send, in order (often none)."""
        if self._finished:
            return []
        name = event or str(data.get("type", ""))
        if name == "message_start":
            return self._message_start(data)
        if name == "content_block_start":
            return self._block_start(data)
        if name == "content_block_delta":
            return self._block_delta(data)
        if name == "content_block_stop":
            return self._block_stop(data)
        if name == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            self._merge_usage(data.get("usage"))
            return []
        if name == "message_stop":
            return self.finish()
        if name == "error":
            self._finished = True
            return [openai_error_from_anthropic(500, data)]
        return []

    def finish(self, thinking_tokens: int | None = None) -> list[JSON]:
        """The closing chunks (finish reason, then usage if asked); empty if already sent.

        ``message_stop`` calls this itself; a caller calls it only to close a stream whose
        upstream ended without ``message_stop`` (or to override the thinking-token count).
        """
        if self._finished:
            return []
        self._finished = True
        finish = finish_reason(self._stop_reason)
        if self._legacy:
            finish = legacy_finish_reason(finish)
        chunks = [self._chunk({}, finish)]
        if self._include_usage:
            usage_chunk = self._envelope()
            usage_chunk["choices"] = []
            usage_chunk["usage"] = openai_usage(self._usage, thinking_tokens)
            chunks.append(usage_chunk)
        return chunks

    def error_chunk(self, message: str, type_: str = "api_error", code: str | None = None) -> JSON:
        """An error for ``data: {"error": ...}`` after the stream started; ends the stream."""
        self._finished = True
        return openai_error_body(message, type_, None, code)

    # -- events -------------------------------------------------------------------------------

    def _message_start(self, data: Mapping[str, Any]) -> list[JSON]:
        message = data.get("message")
        if not isinstance(message, Mapping):
            return []
        if self._id is None:
            self._id = completion_id(message.get("id"))
        self._merge_usage(message.get("usage"))
        if self._role_sent:
            return []
        return [self._chunk({"content": ""})]

    def _block_start(self, data: Mapping[str, Any]) -> list[JSON]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "tool_use":
            state = _Block("tool_use", ordinal=self._tool_calls, start_input=block.get("input"))
            self._tool_calls += 1
            self._blocks[index] = state
            function = {"name": block.get("name", ""), "arguments": ""}
            if self._legacy:
                return [self._chunk({"function_call": function})] if state.ordinal == 0 else []
            call = {
                "index": state.ordinal,
                "id": block.get("id", ""),
                "type": "function",
                "function": function,
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("thinking", "redacted_thinking"):
            state = _Block(str(kind), ordinal=self._thinking_blocks)
            self._thinking_blocks += 1
            self._blocks[index] = state
            if kind == "redacted_thinking":
                state.data = str(block.get("data", ""))
                return []
            state.signature = str(block.get("signature", "") or "")
            thinking = block.get("thinking")
            if isinstance(thinking, str) and thinking:
                state.pieces.append(thinking)
                return [self._chunk({"reasoning_content": thinking})]
            return []
        self._blocks[index] = _Block("ignored")
        return []

    def _block_delta(self, data: Mapping[str, Any]) -> list[JSON]:
        index = data.get("index")
        state = self._blocks.get(index) if isinstance(index, int) else None
        delta = data.get("delta")
        if state is None or not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            text = delta.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "input_json_delta" and state.kind == "tool_use":
            piece = delta.get("partial_json")
            if not isinstance(piece, str) or not piece:
                return []
            state.arguments_sent = True
            return self._arguments(state, piece)
        if kind == "thinking_delta" and state.kind == "thinking":
            thinking = delta.get("thinking")
            if not isinstance(thinking, str) or not thinking:
                return []
            state.pieces.append(thinking)
            return [self._chunk({"reasoning_content": thinking})]
        if kind == "signature_delta" and state.kind == "thinking":
            signature = delta.get("signature")
            if isinstance(signature, str):
                state.signature = signature
        return []

    def _block_stop(self, data: Mapping[str, Any]) -> list[JSON]:
        index = data.get("index")
        state = self._blocks.pop(index, None) if isinstance(index, int) else None
        if state is None:
            return []
        if state.kind == "tool_use" and not state.arguments_sent:
            start = state.start_input if isinstance(state.start_input, Mapping) else {}
            return self._arguments(state, compact_json(start))
        if state.kind == "thinking":
            entry = {
                "index": state.ordinal,
                "type": "thinking",
                "thinking": "".join(state.pieces),
                "signature": state.signature,
            }
            return [self._chunk({"thinking_blocks": [entry]})]
        if state.kind == "redacted_thinking":
            entry = {"index": state.ordinal, "type": "redacted_thinking", "data": state.data}
            return [self._chunk({"thinking_blocks": [entry]})]
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _arguments(self, state: _Block, piece: str) -> list[JSON]:
        if self._legacy:
            # A legacy answer holds one call (the request disables parallel calls).
            return (
                [self._chunk({"function_call": {"arguments": piece}})] if not state.ordinal else []
            )
        call = {"index": state.ordinal, "function": {"arguments": piece}}
        return [self._chunk({"tool_calls": [call]})]

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, Mapping):
            self._usage = merge_usage(self._usage, usage)

    def _envelope(self) -> JSON:
        return {
            "id": self._id or completion_id(None),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        chunk = self._envelope()
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._include_usage:
            chunk["usage"] = None
        return chunk
