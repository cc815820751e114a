"""OpenAI Chat Completions request body → Anthropic Messages request body.

Field by field (``messages`` are described in :mod:`.messages`):

- ``model``: copied (the caller may swap in the resolved catalogue id afterwards).
- ``max_completion_tokens`` wins over ``max_tokens``; with neither, ``traits.default_max_tokens``.
- ``stop``: a string or a list; whitespace-only entries are dropped (the upstream rejects them);
  ``stop_sequences`` is left out when nothing remains.
- ``temperature`` is clamped to [0, 1] (OpenAI allows up to 2); ``top_p`` is passed. Both are left
  out when ``traits.rejects_sampling_params`` or when thinking is on (the upstream fixes sampling
  while thinking). When both are given only ``temperature`` is sent: current Claude models refuse
  the two together.
- ``n`` other than 1 is a :class:`TranslationError` naming ``n``.
- ``reasoning_effort``: ``none`` (or absent) means no thinking. Otherwise, on a model with adaptive
  thinking, ``thinking: {"type": "adaptive"}``; elsewhere ``thinking: {"type": "enabled",
  "budget_tokens": B}`` with B from :data:`THINKING_BUDGETS`, and ``max_tokens`` raised to
  ``B + max_tokens`` when it is not above B (the upstream requires ``max_tokens > budget_tokens``;
  the client's number then still bounds the visible answer). Where ``traits.supports_effort``, also
  ``output_config.effort`` per :data:`EFFORT_LEVELS`. A ``tool_choice`` that forces a tool
  (``required`` or named) turns thinking off: the upstream accepts forced tool use only without
  thinking, and the forced tool is the client's harder constraint.
- ``response_format``: ``json_schema`` → ``output_config.format = {"type": "json_schema",
  "schema": ...}``; ``json_object`` and ``text`` are ignored (the upstream has no schema-less JSON
  mode; OpenAI itself requires the prompt to ask for JSON in that mode).
- ``tools`` (``type: function``) → ``{"name", "description", "input_schema"}``, the schema being
  ``parameters`` or ``{"type": "object", "properties": {}}`` when absent; ``cache_control`` on a tool
  (or on its ``function``) is kept. ``strict`` is ignored.
- ``tool_choice``: ``auto`` → ``auto``, ``required`` → ``any``, ``none`` → ``none``,
  ``{"type": "function", "function": {"name": N}}`` → ``{"type": "tool", "name": N}``;
  ``parallel_tool_calls: false`` adds ``disable_parallel_tool_use: true`` (on ``auto`` when no
  choice was given). Left out when the request has no tools.
- Legacy ``functions`` → tools as above (with ``tools`` too: a :class:`TranslationError`);
  ``function_call``: ``auto``, ``none`` or ``{"name": N}`` as the matching ``tool_choice``, always
  with ``disable_parallel_tool_use`` (a legacy answer holds one call). The caller is told
  (:attr:`TranslatedRequest.legacy_functions`) so the answer says ``message.function_call`` and
  ``finish_reason: "function_call"``.
- ``user`` (or, lacking it, ``safety_identifier``) → ``metadata.user_id``.
- ``stream: true`` → ``stream: true``; ``stream_options.include_usage`` is returned to the caller.
- Ignored: every field in :data:`IGNORED_FIELDS` and any other unknown field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import TranslationError
from .messages import JSON, convert_messages
from .traits import ModelTraits

# Thinking budget per OpenAI effort, for models without adaptive thinking. Anthropic's minimum
# budget is 1024; each step roughly doubles the one before it.
THINKING_BUDGETS: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}

# OpenAI ``reasoning_effort`` → Anthropic ``output_config.effort`` (which has no "minimal").
EFFORT_LEVELS: Final[Mapping[str, str]] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

# Chat Completions fields with no Anthropic counterpart; they are accepted and dropped.
IGNORED_FIELDS: Final = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "metadata",
        "modalities",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "seed",
        "service_tier",
        "store",
        "top_logprobs",
        "verbosity",
        "web_search_options",
    }
)


@dataclass(frozen=True, slots=True)
class TranslatedRequest:
    """The Anthropic body plus what the response side needs to know about the request."""

    anthropic_body: dict[str, Any]
    stream: bool
    include_usage: bool
    model: str
    legacy_functions: bool = False


def to_anthropic(body: Mapping[str, Any], traits: ModelTraits) -> TranslatedRequest:
    """Translate a Chat Completions request body; raises :class:`TranslationError` (a 400)."""
    if not isinstance(body, Mapping):
        raise TranslationError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("You must provide a model parameter.", "model")
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        raise TranslationError("Only n=1 is supported.", "n", "unsupported_value")

    system, messages = convert_messages(body.get("messages"))
    legacy = body.get("functions") is not None
    if legacy:
        tools, tool_choice = _legacy_functions(body)
    else:
        tools = _tools(body.get("tools"))
        tool_choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), tools)
    forces_tool = tool_choice is not None and tool_choice["type"] in ("any", "tool")
    thinking, effort = _reasoning(body.get("reasoning_effort"), traits)
    if forces_tool:
        thinking = None
    max_tokens = _max_tokens(body, traits)
    if thinking is not None and thinking["type"] == "enabled":
        budget: int = thinking["budget_tokens"]
        if max_tokens <= budget:
            max_tokens += budget

    out: JSON = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = system
    if tools:
        out["tools"] = tools
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    if thinking is not None:
        out["thinking"] = thinking
    output_config: JSON = {}
    if effort is not None:
        output_config["effort"] = effort
    response_format = _response_format(body.get("response_format"))
    if response_format is not None:
        output_config["format"] = response_format
    if output_config:
        out["output_config"] = output_config
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    if thinking is None and not traits.rejects_sampling_params:
        out.update(_sampling(body))
    user = _user_id(body)
    if user is not None:
        out["metadata"] = {"user_id": user}
    stream = body.get("stream") is True
    if stream:
        out["stream"] = True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, Mapping) and options.get("include_usage") is True
    return TranslatedRequest(
        anthropic_body=out,
        stream=stream,
        include_usage=include_usage,
        model=model,
        legacy_functions=legacy,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _max_tokens(body: Mapping[str, Any], traits: ModelTraits) -> int:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise TranslationError(f"'{field}' must be a positive integer.", field)
        result: int = value
        return result
    return traits.default_max_tokens


def _stop_sequences(stop: object) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise TranslationError("'stop' must be a string or an array of strings.", "stop")
    return [s for s in items if s.strip()]


def _sampling(body: Mapping[str, Any]) -> JSON:
    result: JSON = {}
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None:
        if not _is_number(temperature):
            raise TranslationError("'temperature' must be a number.", "temperature")
        result["temperature"] = min(max(temperature, 0), 1)
    if top_p is not None:
        if not _is_number(top_p):
            raise TranslationError("'top_p' must be a number.", "top_p")
        if "temperature" not in result:
            result["top_p"] = top_p
    return result


def _reasoning(value: object, traits: ModelTraits) -> tuple[JSON | None, str | None]:
    """``(thinking, effort)`` for ``reasoning_effort``; ``(None, None)`` when thinking is off."""
    if value is None or value == "none":
        return None, None
    if not isinstance(value, str) or value not in THINKING_BUDGETS:
        raise TranslationError(
            f"Unsupported reasoning_effort {value!r}; expected one of none, "
            f"{', '.join(THINKING_BUDGETS)}.",
            "reasoning_effort",
            "unsupported_value",
        )
    thinking: JSON
    if traits.supports_adaptive_thinking:
        thinking = {"type": "adaptive"}
    else:
        thinking = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[value]}
    return thinking, EFFORT_LEVELS[value] if traits.supports_effort else None


def _response_format(value: object) -> JSON | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TranslationError("'response_format' must be an object.", "response_format")
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return None
    if kind != "json_schema":
        raise TranslationError(
            f"Unsupported response_format type {kind!r}.", "response_format.type"
        )
    spec = value.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise TranslationError(
            "response_format.json_schema.schema must be a JSON schema object.",
            "response_format.json_schema.schema",
        )
    return {"type": "json_schema", "schema": dict(schema)}


def _tools(value: object) -> list[JSON]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TranslationError("'tools' must be an array.", "tools")
    tools: list[JSON] = []
    for i, tool in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise TranslationError("Only function tools are supported.", f"{path}.type")
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
            raise TranslationError(
                f"{path}.function.name must be a non-empty string.", f"{path}.function.name"
            )
        out: JSON = {"name": name}
        description = function.get("description")
        if isinstance(description, str) and description:
            out["description"] = description
        out["input_schema"] = _input_schema(function.get("parameters"), f"{path}.function")
        cache_control = tool.get("cache_control", function.get("cache_control"))
        if isinstance(cache_control, Mapping):
            out["cache_control"] = dict(cache_control)
        tools.append(out)
    return tools


def _input_schema(parameters: object, path: str) -> JSON:
    if parameters is None or parameters == {}:
        return {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise TranslationError(f"{path}.parameters must be an object.", f"{path}.parameters")
    if "type" not in parameters:
        return {"type": "object", **parameters}
    return dict(parameters)


def _tool_choice(choice: object, parallel: object, tools: list[JSON]) -> JSON | None:
    if not tools:
        return None
    disable_parallel = parallel is False
    result: JSON
    if choice is None or choice == "auto":
        if not disable_parallel:
            return None if choice is None else {"type": "auto"}
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise TranslationError(
                "tool_choice.function.name must be a string.", "tool_choice.function.name"
            )
        result = {"type": "tool", "name": name}
    else:
        raise TranslationError(
            "'tool_choice' must be auto, required, none or a named function.", "tool_choice"
        )
    if disable_parallel:
        result["disable_parallel_tool_use"] = True
    return result


def _legacy_functions(body: Mapping[str, Any]) -> tuple[list[JSON], JSON | None]:
    """``functions`` and ``function_call`` as tools and a tool choice; one call per answer."""
    if body.get("tools") is not None:
        raise TranslationError("Send 'tools' or the legacy 'functions', not both.", "functions")
    functions = body["functions"]
    if not isinstance(functions, list) or not functions:
        raise TranslationError("'functions' must be a non-empty array.", "functions")
    try:
        tools = _tools([{"type": "function", "function": f} for f in functions])
    except TranslationError as exc:
        param = exc.param.replace("tools[", "functions[", 1) if exc.param else exc.param
        param = param.replace("].function.", "].", 1) if param else param
        raise TranslationError(exc.message.replace("tools[", "functions["), param) from None
    choice = body.get("function_call")
    if isinstance(choice, Mapping):
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice not in (None, "auto", "none"):
        raise TranslationError(
            "'function_call' must be auto, none or {\"name\": ...}.", "function_call"
        )
    try:
        return tools, _tool_choice(choice, False, tools)
    except TranslationError:
        raise TranslationError(
            "function_call.name must be a string.", "function_call.name"
        ) from None


def _user_id(body: Mapping[str, Any]) -> str | None:
    for field in ("user", "safety_identifier"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return None
