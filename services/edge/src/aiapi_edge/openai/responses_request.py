"""OpenAI Responses API request body → Anthropic Messages request body.

The Responses body is first rewritten as the Chat Completions body it means, then translated by
:func:`.request.to_anthropic`, so both OpenAI routes share every rule (thinking budgets, sampling,
tool choice, images, ``user``...). An error names the Responses field (``input[2].content[0]``,
``max_output_tokens``, ``reasoning.effort``), never the chat one. Field by field:

- ``input``: a string is one user message. A list holds items, each becoming one chat message
  (so ``input[i]`` and ``messages[i]`` name the same thing):

  - ``message`` items (with or without ``type``): ``system``/``developer``/``user``/``assistant``
    roles kept; ``input_text`` and ``output_text`` parts → text; ``input_image`` (``image_url`` a
    data URL or an http(s) URL) → an image; ``input_file`` with ``file_data`` (a base64 PDF data
    URL) → a document; ``refusal`` parts dropped. ``file_id`` references need stored files: 400.
  - ``function_call`` → an assistant ``tool_use`` (``call_id`` is its id, ``arguments`` parsed).
  - ``function_call_output`` → a ``tool_result`` for ``call_id`` (``output`` a string or parts).
  - ``reasoning`` → the thinking block sealed in its ``encrypted_content``
    (:func:`.responses_items.open_thinking`), byte-identical; a reasoning item without this
    gateway's seal (another provider's) is left out, as the upstream would refuse it.
  - ``item_reference`` and any other item type: 400 (nothing is stored; no hosted tools).

  Consecutive items of one role merge into one turn as on the chat route (thinking first in an
  assistant turn, tool results first in a user turn).
- ``instructions`` → a text block at the start of ``system`` (before any system or developer
  input messages).
- ``max_output_tokens`` → ``max_tokens`` (default: the model's ``default_max_tokens``).
- ``reasoning.effort`` → thinking exactly as the chat route's ``reasoning_effort``
  (:data:`.request.THINKING_BUDGETS`, adaptive thinking and ``output_config.effort`` where the model
  has them); absent or ``none`` means no thinking. ``reasoning.summary`` is accepted (the thinking
  text is always the summary).
- ``tools``: ``function`` tools (``name``, ``description``, ``parameters``) → Anthropic tools; the
  functions of a ``namespace`` tool → tools named ``<namespace>__<name>`` (a ``function_call``
  input item with a ``namespace`` is named alike; the response splits the name again). Tools of
  any other type (``web_search``, ``file_search``, ``custom``, ...) are not offered to the model:
  the gateway runs no hosted tools, and clients such as Codex send some by default. ``tool_choice``: ``auto``/``required``/``none`` or
  ``{"type": "function", "name"}``, as on the chat route; ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``.
- ``text.format``: ``json_schema`` (``schema``) → ``output_config.format``; ``text`` and
  ``json_object`` add nothing.
- ``temperature``, ``top_p``, ``user``/``safety_identifier``, ``stream``: as on the chat route.
- ``previous_response_id``: the caller passes the stored conversation it names as ``history``
  (the operator's optional store, :mod:`aiapi_edge.response_store`); its items come before
  ``input``. Without a store it is a 400, as are ``conversation``, ``prompt`` and
  ``background: true`` always: send the whole conversation in ``input``.
- Ignored: ``include``, ``metadata`` (echoed in the response), ``store``, ``truncation``,
  ``service_tier``, ``prompt_cache_key``, ``prompt_cache_retention``, ``max_tool_calls``,
  ``top_logprobs``, ``stream_options``, and any other unknown field.

The request's own settings (``instructions``, ``tools``, ``tool_choice``, ``reasoning``...) are
returned as :attr:`ResponsesRequest.echo` for the response object, which repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import TranslationError
from .request import to_anthropic
from .responses_items import Namespaced, namespaced_name, open_thinking
from .traits import ModelTraits

JSON = dict[str, Any]

# Fields whose non-empty value needs a stored response, conversation or prompt: refused.
STATEFUL_FIELDS: Final = ("previous_response_id", "conversation", "prompt")

# Chat param names in a TranslationError → the Responses names, by prefix (longest first).
_PARAM_NAMES: Final = (
    ("max_completion_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format", "text.format"),
    ("tool_choice.function.name", "tool_choice.name"),
    ("messages", "input"),
)


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """The Anthropic body, whether to stream, and what the response object echoes."""

    anthropic_body: dict[str, Any]
    stream: bool
    echo: JSON
    namespaced: Namespaced
    input_items: list[JSON]


def to_anthropic_from_responses(
    body: Mapping[str, Any], traits: ModelTraits, history: list[JSON] | None = None
) -> ResponsesRequest:
    """Translate a Responses request body; raises :class:`TranslationError` (a 400).

    ``history`` is the stored conversation ``previous_response_id`` names (the caller looks it
    up); without it, a ``previous_response_id`` is refused.
    """
    if not isinstance(body, Mapping):
        raise TranslationError("The request body must be a JSON object.")
    for field in STATEFUL_FIELDS:
        if field == "previous_response_id" and history is not None:
            continue
        if body.get(field) not in (None, ""):
            raise TranslationError(
                f"'{field}' is not supported: this gateway stores no responses, so send the "
                "whole conversation in 'input' (with store: false).",
                field,
                "unsupported_parameter",
            )
    if body.get("background") is True:
        raise TranslationError(
            "Background responses are not supported.", "background", "unsupported_parameter"
        )
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise TranslationError("'instructions' must be a string.", "instructions")
    items = input_items(body.get("input"))
    chat, namespaced = _chat_body(body, [*(history or []), *items], len(history or []))
    try:
        translated = to_anthropic(chat, traits)
    except TranslationError as exc:
        raise _renamed(exc, len(history or [])) from None
    anthropic_body = translated.anthropic_body
    if instructions:
        system = [{"type": "text", "text": instructions}, *anthropic_body.get("system", [])]
        anthropic_body["system"] = system
    return ResponsesRequest(anthropic_body, translated.stream, _echo(body), namespaced, items)


def _renamed(exc: TranslationError, stored: int = 0) -> TranslationError:
    """The error with Responses names; ``stored`` items of history came before ``input``."""
    param, message = exc.param, exc.message
    if stored and param is not None and param.startswith("messages["):
        index = int(param[len("messages[") : param.index("]")])
        if index < stored:
            return TranslationError(
                f"The stored conversation cannot be continued: {message}",
                "previous_response_id",
                exc.code,
            )
        param = f"messages[{index - stored}{param[param.index(']') :]}"
        message = message.replace(f"messages[{index}]", f"messages[{index - stored}]")
    for chat_name, name in _PARAM_NAMES:
        if param is not None and param.startswith(chat_name):
            param = name + param[len(chat_name) :]
        message = message.replace(chat_name, name)
    if param is not None and param.startswith("tools[") and ".function." in param:
        param = param.replace(".function.", ".", 1)
    return TranslationError(message, param, exc.code)


def _chat_body(
    body: Mapping[str, Any], items: list[JSON], stored: int
) -> tuple[JSON, dict[str, tuple[str, str]]]:
    messages = [
        _message(item, f"input[{i - stored}]" if i >= stored else "previous_response_id")
        for i, item in enumerate(items)
    ]
    chat: JSON = {"model": body.get("model"), "messages": messages}
    max_output = body.get("max_output_tokens")
    if max_output is not None:
        chat["max_completion_tokens"] = max_output
    for field in ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier"):
        if body.get(field) is not None:
            chat[field] = body[field]
    if body.get("stream") is True:
        chat["stream"] = True
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, Mapping):
            raise TranslationError("'reasoning' must be an object.", "reasoning")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    tools = body.get("tools")
    namespaced: dict[str, tuple[str, str]] = {}
    if tools is not None:
        chat["tools"], namespaced = _tools(tools)
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
    text = body.get("text")
    if text is not None:
        if not isinstance(text, Mapping):
            raise TranslationError("'text' must be an object.", "text")
        response_format = _response_format(text.get("format"))
        if response_format is not None:
            chat["response_format"] = response_format
    return chat, namespaced


def input_items(value: object) -> list[JSON]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        if not value:
            raise TranslationError("'input' must not be empty.", "input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise TranslationError("'input' must be a string or a non-empty array of items.", "input")
    return value


def _message(item: object, path: str) -> JSON:
    if not isinstance(item, Mapping):
        raise TranslationError(f"{path} must be an object.", path)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if isinstance(content, list):
            content = [_part(part, f"{path}.content[{j}]") for j, part in enumerate(content)]
        message: JSON = {"role": role, "content": content}
        if isinstance(item.get("cache_control"), Mapping):
            message["cache_control"] = item["cache_control"]
        return message
    if kind == "function_call":
        call_id, name, namespace = item.get("call_id"), item.get("name"), item.get("namespace")
        if isinstance(namespace, str) and namespace and isinstance(name, str):
            name = namespaced_name(namespace, name)
        function = {"name": name, "arguments": item.get("arguments")}
        call = {"id": call_id, "type": "function", "function": function}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = [_part(part, f"{path}.output[{j}]") for j, part in enumerate(output)]
        elif not isinstance(output, str):
            raise TranslationError(f"{path}.output must be a string or an array.", f"{path}.output")
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": output}
    if kind == "reasoning":
        block = open_thinking(item.get("encrypted_content"))
        return {"role": "assistant", "content": None, "thinking_blocks": [block] if block else []}
    if kind == "item_reference":
        raise TranslationError(
            "Item references need stored responses, which this gateway does not keep; send the "
            "item itself.",
            f"{path}.type",
            "unsupported_parameter",
        )
    raise TranslationError(
        f"Unsupported input item type {kind!r}; expected message, function_call, "
        "function_call_output or reasoning.",
        f"{path}.type",
    )


def _part(part: object, path: str) -> object:
    """A Responses content part as the chat content part it means (errors left to the chat side)."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    out: JSON
    if kind in ("input_text", "output_text"):
        out = {"type": "text", "text": part.get("text")}
    elif kind == "refusal":
        out = {"type": "refusal"}
    elif kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise TranslationError(
                "input_image needs an 'image_url' (a data URL or an http(s) URL); file ids are "
                "not supported.",
                f"{path}.image_url",
            )
        out = {"type": "image_url", "image_url": {"url": url}}
    elif kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise TranslationError(
                "input_file needs 'file_data' (a base64 PDF data URL); file ids and URLs are not "
                "supported.",
                f"{path}.file_data",
            )
        out = {"type": "file", "file": {"file_data": data}}
    else:
        raise TranslationError(
            f"Unsupported content part type {kind!r}; expected input_text, input_image or "
            "input_file.",
            f"{path}.type",
        )
    if isinstance(part.get("cache_control"), Mapping):
        out["cache_control"] = part["cache_control"]
    return out


def _tools(value: object) -> tuple[list[JSON], dict[str, tuple[str, str]]]:
    """The chat tools, and the upstream name → ``(namespace, name)`` of namespaced functions."""
    if not isinstance(value, list):
        raise TranslationError("'tools' must be an array.", "tools")
    tools: list[JSON] = []
    namespaced: dict[str, tuple[str, str]] = {}
    for i, tool in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise TranslationError(f"{path} must be an object.", path)
        kind = tool.get("type")
        if kind == "function":
            tools.append(_function_tool(tool, path, tool.get("name")))
        elif kind == "namespace":
            namespace, inner = tool.get("name"), tool.get("tools")
            if not isinstance(namespace, str) or not namespace or not isinstance(inner, list):
                raise TranslationError(
                    f"{path} needs a 'name' and a 'tools' array.", f"{path}.name"
                )
            for j, function in enumerate(inner):
                if not isinstance(function, Mapping) or function.get("type") != "function":
                    continue  # like a top-level tool of another type: not offered
                name = function.get("name")
                if not isinstance(name, str) or not name:
                    raise TranslationError(
                        f"{path}.tools[{j}].name must be a non-empty string.",
                        f"{path}.tools[{j}].name",
                    )
                upstream = namespaced_name(namespace, name)
                namespaced[upstream] = (namespace, name)
                tools.append(_function_tool(function, f"{path}.tools[{j}]", upstream))
        # Any other type (web_search, file_search, custom...) is not offered to the model: the
        # gateway runs no hosted tools, and clients such as Codex send them by default.
    names = [t["function"]["name"] for t in tools]
    if len(set(names)) != len(names):
        raise TranslationError("Tool names must be unique (a namespace's too).", "tools")
    return tools, namespaced


def _function_tool(tool: Mapping[str, Any], path: str, name: object) -> JSON:
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name must be a non-empty string.", f"{path}.name")
    function = {k: tool[k] for k in ("description", "parameters") if k in tool}
    out: JSON = {"type": "function", "function": {"name": name, **function}}
    if isinstance(tool.get("cache_control"), Mapping):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: object) -> object:
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if choice in ("auto", "required", "none"):
        return choice
    raise TranslationError(
        '\'tool_choice\' must be auto, required, none or {"type": "function", "name": ...}.',
        "tool_choice",
    )


def _response_format(value: object) -> JSON | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TranslationError("'text.format' must be an object.", "text.format")
    if value.get("type") == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": value.get("name"), "schema": value.get("schema")},
        }
    return dict(value)


def _echo(body: Mapping[str, Any]) -> JSON:
    """The request's settings as the response object repeats them (OpenAI's defaults if absent)."""
    reasoning = body.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, Mapping) else {}
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, Mapping) else None
    metadata = body.get("metadata")
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {
            "effort": reasoning.get("effort"),
            "summary": reasoning.get("summary"),
        },
        "store": False,  # until the caller stores the response
        "temperature": body.get("temperature"),
        "text": {"format": dict(text_format or {"type": "text"})},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []),
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "user": body.get("user"),
    }
