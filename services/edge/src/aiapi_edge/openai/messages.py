"""OpenAI ``messages`` → Anthropic ``system`` + ``messages``.

The rules, in the order a conversation meets them:

- ``system`` and ``developer`` messages, wherever they stand, become text blocks of the top-level
  ``system`` list, in order.
- ``user`` content: a string becomes one text block; ``text`` parts become text blocks;
  ``image_url`` parts become image blocks (a ``data:`` URL becomes a ``base64`` source with its
  media type, an ``http(s)`` URL a ``url`` source: the gateway never fetches it); a ``file`` part
  holding a PDF data URL becomes a ``document`` block. Empty text is dropped (the upstream rejects
  empty text blocks).
- ``assistant``: ``thinking_blocks`` (signed ``thinking`` and ``redacted_thinking``, as this module's
  responses hand them out) come first, their fields copied unchanged; then the text; then one
  ``tool_use`` block per ``tool_calls`` entry, its JSON ``arguments`` parsed into ``input``
  (invalid JSON, or JSON that is not an object, is a :class:`TranslationError` naming the param).
  A bare ``reasoning_content`` without ``thinking_blocks`` is dropped: the upstream rejects thinking
  without its signature.
- ``tool`` messages become ``tool_result`` blocks of a user turn.
- Legacy functions: an assistant ``function_call`` (``name``, ``arguments``) becomes a ``tool_use``
  block with the id ``call_function_<i>`` (``i`` the message's index; legacy calls carry no id),
  and the ``function`` message that follows (``name``, ``content``) its ``tool_result``. A
  ``function`` message with no call before it is a :class:`TranslationError`.
- Consecutive turns of one role are merged into one (the upstream requires alternation); inside a
  merged user turn the ``tool_result`` blocks go first, inside an assistant turn the thinking
  blocks go first, each group keeping its order.
- ``cache_control`` set by the client on a content part reaches the block made from it; set on a
  message, it goes to the last block made from that message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from .errors import TranslationError

JSON = dict[str, Any]

IMAGE_MEDIA_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_MEDIA_TYPE_ALIASES: Final[Mapping[str, str]] = {"image/jpg": "image/jpeg"}
_THINKING_TYPES: Final = frozenset({"thinking", "redacted_thinking"})


def convert_messages(messages: object) -> tuple[list[JSON], list[JSON]]:
    """``(system_blocks, anthropic_messages)`` for the ``messages`` field of a request."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array.", "messages")
    system: list[JSON] = []
    turns: list[tuple[str, list[JSON]]] = []
    function_call_id: str | None = None  # the legacy function call a function message answers
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise TranslationError(f"{path} must be an object.", path)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(message, path))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), f"{path}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, path)
            if message.get("function_call") is not None:
                function_call_id = legacy_call_id(i)
                blocks.append(_legacy_tool_use(message["function_call"], function_call_id, path))
        elif role == "tool":
            blocks = [_tool_result(message, path)]
        elif role == "function":
            if function_call_id is None:
                raise TranslationError(
                    f"{path}: a function message must follow an assistant message with a "
                    "function_call.",
                    f"{path}.role",
                )
            blocks = [_tool_result({**message, "tool_call_id": function_call_id}, path)]
            function_call_id = None
        else:
            raise TranslationError(
                f"Unsupported role {role!r} in {path}; expected system, developer, user, "
                "assistant, tool or function.",
                f"{path}.role",
            )
        _apply_message_cache_control(blocks, message)
        if blocks:
            turns.append(("assistant" if role == "assistant" else "user", blocks))
    if not turns:
        raise TranslationError(
            "'messages' must contain at least one user, assistant or tool message.", "messages"
        )
    return system, _merge_turns(turns)


def legacy_call_id(index: int) -> str:
    """The tool_use id given to the legacy ``function_call`` of the assistant message at
    ``index`` (legacy calls have no id; the function message after it answers it)."""
    return f"call_function_{index}"


def _merge_turns(turns: list[tuple[str, list[JSON]]]) -> list[JSON]:
    merged: list[tuple[str, list[JSON]]] = []
    for role, blocks in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, list(blocks)))
    result: list[JSON] = []
    for role, blocks in merged:
        first = _THINKING_TYPES if role == "assistant" else frozenset({"tool_result"})
        ordered = [b for b in blocks if b["type"] in first] + [
            b for b in blocks if b["type"] not in first
        ]
        result.append({"role": role, "content": ordered})
    return result


def _with_cache_control(block: JSON, source: Mapping[str, Any]) -> JSON:
    cache_control = source.get("cache_control")
    if isinstance(cache_control, Mapping):
        block["cache_control"] = dict(cache_control)
    return block


def _apply_message_cache_control(blocks: list[JSON], message: Mapping[str, Any]) -> None:
    """A message-level breakpoint marks the end of the message: its last block."""
    if blocks and "cache_control" not in blocks[-1] and blocks[-1]["type"] not in _THINKING_TYPES:
        _with_cache_control(blocks[-1], message)


def _system_blocks(message: Mapping[str, Any], path: str) -> list[JSON]:
    content = message.get("content")
    blocks: list[JSON] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            part_path = f"{path}.content[{j}]"
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise TranslationError(
                    "System and developer messages may only contain text parts.", part_path
                )
            block = _text_block(part, part_path)
            if block is not None:
                blocks.append(block)
    elif content is not None:
        raise TranslationError(f"{path}.content must be a string or an array.", f"{path}.content")
    _apply_message_cache_control(blocks, message)
    return blocks


def _text_block(part: Mapping[str, Any], path: str) -> JSON | None:
    text = part.get("text")
    if not isinstance(text, str):
        raise TranslationError(f"{path}.text must be a string.", f"{path}.text")
    if not text:
        return None
    return _with_cache_control({"type": "text", "text": text}, part)


def _content_blocks(content: object, path: str) -> list[JSON]:
    """User (and tool) content: a string or an array of text, image and file parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError(f"{path} must be a string or an array of content parts.", path)
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        block = _content_part(part, f"{path}[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _content_part(part: object, path: str) -> JSON | None:
    if not isinstance(part, Mapping):
        raise TranslationError(f"{path} must be an object.", path)
    kind = part.get("type")
    if kind == "text":
        return _text_block(part, path)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise TranslationError(f"{path}.image_url.url must be a string.", f"{path}.image_url")
        source = _image_source(url, f"{path}.image_url")
        return _with_cache_control({"type": "image", "source": source}, part)
    if kind == "file":
        return _with_cache_control(_document_block(part, path), part)
    raise TranslationError(
        f"Unsupported content part type {kind!r}; expected text, image_url or file.", f"{path}.type"
    )


def _data_url(url: str, path: str) -> tuple[str, str]:
    """``(media_type, base64_data)`` of a ``data:<type>;base64,<data>`` URL."""
    header, comma, data = url[len("data:") :].partition(",")
    media_type, *params = header.split(";")
    if not comma or "base64" not in params or not data:
        raise TranslationError("Only base64 data URLs are supported.", path)
    media_type = media_type.strip().lower()
    return _MEDIA_TYPE_ALIASES.get(media_type, media_type), data


def _image_source(url: str, path: str) -> JSON:
    lowered = url[:8].lower()
    if lowered.startswith("data:"):
        media_type, data = _data_url(url, path)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise TranslationError(
                f"Unsupported image type {media_type!r}; expected one of "
                f"{', '.join(sorted(IMAGE_MEDIA_TYPES))}.",
                path,
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    if lowered.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise TranslationError("An image URL must be an http(s) URL or a base64 data URL.", path)


def _document_block(part: Mapping[str, Any], path: str) -> JSON:
    file = part.get("file")
    file_data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(file_data, str) or not file_data.startswith("data:"):
        raise TranslationError(
            "Only file parts carrying 'file_data' as a base64 PDF data URL are supported.",
            f"{path}.file",
        )
    media_type, data = _data_url(file_data, f"{path}.file.file_data")
    if media_type != "application/pdf":
        raise TranslationError(
            f"Unsupported file type {media_type!r}; only application/pdf is supported.",
            f"{path}.file.file_data",
        )
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _assistant_blocks(message: Mapping[str, Any], path: str) -> list[JSON]:
    blocks = _thinking_blocks(message.get("thinking_blocks"), f"{path}.thinking_blocks")
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            part_path = f"{path}.content[{j}]"
            if not isinstance(part, Mapping):
                raise TranslationError(f"{part_path} must be an object.", part_path)
            if part.get("type") == "refusal":
                continue
            if part.get("type") != "text":
                raise TranslationError(
                    "Assistant messages may only contain text and refusal parts.", part_path
                )
            block = _text_block(part, part_path)
            if block is not None:
                blocks.append(block)
    elif content is not None:
        raise TranslationError(f"{path}.content must be a string or an array.", f"{path}.content")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise TranslationError(f"{path}.tool_calls must be an array.", f"{path}.tool_calls")
        for j, call in enumerate(tool_calls):
            blocks.append(_tool_use(call, f"{path}.tool_calls[{j}]"))
    return blocks


def _thinking_blocks(value: object, path: str) -> list[JSON]:
    """Thinking blocks sent back by the client, copied field for field (no re-encoding)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TranslationError(f"{path} must be an array.", path)
    blocks: list[JSON] = []
    for block in value:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            # Unsigned thinking (e.g. from another provider) would be rejected upstream.
            if isinstance(thinking, str) and isinstance(signature, str) and signature:
                blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        elif kind == "redacted_thinking":
            data = block.get("data")
            if isinstance(data, str):
                blocks.append({"type": "redacted_thinking", "data": data})
    return blocks


def _tool_use(call: object, path: str) -> JSON:
    if not isinstance(call, Mapping):
        raise TranslationError(f"{path} must be an object.", path)
    call_id = call.get("id")
    function = call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError(f"{path}.id must be a non-empty string.", f"{path}.id")
    if call.get("type", "function") != "function" or not isinstance(function, Mapping):
        raise TranslationError("Only function tool calls are supported.", f"{path}.type")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.function.name must be a string.", f"{path}.function.name")
    arguments = function.get("arguments")
    args_path = f"{path}.function.arguments"
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        tool_input: object = {}
    elif isinstance(arguments, str):
        try:
            tool_input = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise TranslationError(
                f"{args_path} is not valid JSON.", args_path, "invalid_tool_arguments"
            ) from None
    else:
        raise TranslationError(f"{args_path} must be a string of JSON.", args_path)
    if not isinstance(tool_input, dict):
        raise TranslationError(
            f"{args_path} must be a JSON object.", args_path, "invalid_tool_arguments"
        )
    return _with_cache_control(
        {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}, call
    )


def _legacy_tool_use(function: object, call_id: str, path: str) -> JSON:
    try:
        return _tool_use({"id": call_id, "function": function}, path)
    except TranslationError as exc:
        param = exc.param.replace(".function.", ".function_call.", 1) if exc.param else None
        raise TranslationError(
            exc.message.replace(".function.", ".function_call."), param, exc.code
        ) from None


def _tool_result(message: Mapping[str, Any], path: str) -> JSON:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise TranslationError(
            f"{path}.tool_call_id must be a non-empty string.", f"{path}.tool_call_id"
        )
    block: JSON = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _content_blocks(content, f"{path}.content")
        if parts:
            block["content"] = parts
    return block
