"""Hypothesis strategies for hostile request bodies: Anthropic Messages and OpenAI Chat bodies
shaped like the real thing, then broken at the byte level (malformed JSON, wrong types, deep
nesting, broken UTF-8 and lone surrogates, NaN/Infinity and huge numbers, huge strings).

``AIAPI_FUZZ_SCALE`` (default 1) multiplies every fuzz test's example count; at 1 the runs are
derandomized (the same examples every time, the suite's fixed budget), above 1 they are random.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = max(1, int(os.environ.get("AIAPI_FUZZ_SCALE", "1")))


def fuzz_settings(examples: int) -> settings:
    """``examples`` per run (times AIAPI_FUZZ_SCALE), no deadline, fixed when not scaled."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# Mostly models on sale (so that most bodies reach the translation and the upstream).
MODELS = [
    "claude-haiku-4-5",
    "claude-haiku-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "gpt-4o",
    "",
]

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
counts = st.integers(min_value=-5, max_value=2**66) | json_values


def either(*good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly (five times in six) a well-typed value, sometimes any JSON value at all."""
    typed = st.one_of(*good)
    # Hypothesis leans towards small draws: 0..4 are the typed ones.
    return st.integers(0, 5).flatmap(lambda n: json_values if n == 5 else typed)


anthropic_blocks = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking"]))},
    optional={
        "text": either(st.text(max_size=40)),
        "source": json_values,
        "id": either(st.text(max_size=12)),
        "name": either(st.text(max_size=12)),
        "input": json_values,
        "tool_use_id": either(st.text(max_size=12)),
        "content": json_values,
        "thinking": either(st.text(max_size=12)),
        "signature": either(st.text(max_size=12)),
        "cache_control": either(st.just({"type": "ephemeral"})),
    },
)
anthropic_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": either(st.sampled_from(["user", "assistant", "system"])),
            "content": either(st.text(max_size=60), st.lists(anthropic_blocks, max_size=3)),
        }
    ),
    max_size=4,
)
anthropic_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS), "messages": either(anthropic_messages)},
    optional={
        "max_tokens": either(st.integers(min_value=1, max_value=64)) | counts,
        "stream": either(st.booleans()),
        "system": either(st.text(max_size=30), st.lists(anthropic_blocks, max_size=2)),
        "temperature": either(st.floats(min_value=-1, max_value=3)),
        "top_p": json_values,
        "top_k": counts,
        "stop_sequences": either(st.lists(st.text(max_size=5), max_size=3)),
        "tools": either(st.lists(json_values, max_size=2)),
        "tool_choice": json_values,
        "thinking": either(
            st.fixed_dictionaries({"type": st.just("enabled"), "budget_tokens": counts})
        ),
        "metadata": json_values,
        "unknown_field": json_values,
    },
)

openai_parts = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["text", "image_url", "file", "input_audio", "refusal"]))},
    optional={
        "text": either(st.text(max_size=30)),
        "image_url": either(
            st.fixed_dictionaries(
                {
                    "url": either(
                        st.sampled_from(
                            [
                                "data:image/png;base64,iVBORw0KGgo=",
                                "data:image/png;base64,%%%",
                                "data:;base64,",
                                "https://example.com/cat.png",
                                "data:image/jpeg,raw",
                            ]
                        )
                    )
                }
            )
        ),
        "file": json_values,
        "cache_control": json_values,
    },
)
openai_tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": either(st.text(max_size=10)),
            "type": either(st.just("function")),
            "function": either(
                st.fixed_dictionaries(
                    {
                        "name": either(st.text(max_size=10)),
                        "arguments": either(st.text(max_size=30), st.just('{"a": 1}')),
                    }
                )
            ),
        }
    ),
    max_size=2,
)
openai_plain = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]), "content": st.text(max_size=40)}
)
openai_messages = st.lists(
    openai_plain
    | st.fixed_dictionaries(
        {
            "role": either(
                st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
            )
        },
        optional={
            "content": either(st.text(max_size=60), st.lists(openai_parts, max_size=3)),
            "tool_calls": either(openai_tool_calls),
            "tool_call_id": either(st.text(max_size=10)),
            "name": either(st.text(max_size=10)),
            "thinking_blocks": either(st.lists(json_values, max_size=2)),
        },
    ),
    max_size=4,
)
openai_tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": either(st.just("function")),
            "function": either(
                st.fixed_dictionaries(
                    {"name": either(st.text(max_size=10))},
                    optional={"parameters": json_values, "description": json_values},
                )
            ),
        }
    ),
    max_size=2,
)
openai_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS), "messages": either(openai_messages)},
    optional={
        "max_tokens": either(st.integers(min_value=1, max_value=64)) | counts,
        "max_completion_tokens": counts,
        "stream": either(st.booleans()),
        "stream_options": either(st.fixed_dictionaries({"include_usage": json_values})),
        "temperature": either(st.floats(min_value=-1, max_value=3)),
        "top_p": json_values,
        "n": counts,
        "stop": either(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=5)),
        "tools": either(openai_tools),
        "tool_choice": either(
            st.sampled_from(["auto", "none", "required"]),
            st.fixed_dictionaries(
                {"type": st.just("function"), "function": st.fixed_dictionaries({"name": leaves})}
            ),
        ),
        "parallel_tool_calls": json_values,
        "reasoning_effort": either(
            st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"])
        ),
        "response_format": either(
            st.fixed_dictionaries(
                {"type": either(st.sampled_from(["text", "json_object", "json_schema"]))},
                optional={"json_schema": json_values},
            )
        ),
        "user": json_values,
        "safety_identifier": json_values,
        "logit_bias": json_values,
    },
)

# Byte-level damage to an encoded body.
HOSTILE_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 400, b"-0"]
HOSTILE_STRINGS = [
    b'"\\ud800"',  # a lone high surrogate, escaped
    b'"\\udc00x"',  # a lone low surrogate
    b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8 (invalid UTF-8)
    b'"\xff\xfe"',  # not UTF-8 at all
    b'"\xc3"',  # a truncated sequence
    b'"\\u00"',  # a truncated escape
    b'"\x00\x01"',  # raw control characters
]


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"0" + b"}" * depth


@st.composite
def damaged(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> bytes:
    # json, not orjson: integers past 64 bits are wanted, and lone surrogates come out escaped.
    raw = json.dumps(draw(bodies)).encode()
    if draw(st.integers(0, 2)) < 2:
        return raw  # sent whole: most bodies are valid JSON of the right outline
    how = draw(
        st.sampled_from(
            [
                "model",
                "truncate",
                "insert",
                "flip",
                "number",
                "string",
                "nest",
                "huge",
                "wrap",
                "empty",
            ]
        )
    )
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    if how == "truncate":
        return raw[:at]
    if how == "insert":
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if how == "flip" and raw:
        spot = min(at, len(raw) - 1)
        return raw[:spot] + bytes([draw(st.integers(0, 255))]) + raw[spot + 1 :]
    if how in ("model", "number", "string", "nest", "huge"):
        # Replace the value of a top-level member (or add one) with something hostile.
        field = draw(st.sampled_from(["max_tokens", "model", "messages", "temperature", "x"]))
        if how == "model":
            value = json.dumps(draw(json_values | st.sampled_from(["gpt-4o", ""]))).encode()
            field = "model"
        elif how == "number":
            value = draw(st.sampled_from(HOSTILE_NUMBERS))
        elif how == "string":
            value = draw(st.sampled_from(HOSTILE_STRINGS))
        elif how == "nest":
            depth = draw(st.sampled_from([64, 1023, 1024, 1025, 5000]))
            value = nested_arrays(depth) if draw(st.booleans()) else nested_objects(depth)
        else:
            value = b'"' + b"a" * draw(st.sampled_from([70_000, 300_000])) + b'"'
        return b'{"%s":%s,' % (field.encode(), value) + raw[1:] if raw != b"{}" else b"{}"
    if how == "wrap":
        return draw(st.sampled_from([b"[", b'"', b"1", b"null", b"[]"])) + raw
    if how == "empty":
        return draw(
            st.sampled_from([b"", b" ", b"null", b"[]", b'""', b"0", b"{}", b"\xef\xbb\xbf{}"])
        )
    return raw
