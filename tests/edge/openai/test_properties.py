"""Property tests: however the upstream splits a tool's JSON, the client gets the same arguments."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
from aiapi_edge.openai import ChunkTranslator
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from . import events as ev
from .support import function_calls

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
tool_inputs = st.dictionaries(st.text(max_size=6), json_values, max_size=4)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@st.composite
def tool_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[ev.Event]]:
    inputs = draw(st.lists(tool_inputs, min_size=1, max_size=4))
    with_text = draw(st.booleans())
    stream: list[ev.Event] = [ev.message_start()]
    index = 0
    if with_text:
        stream += ev.text_block(0, "Sure.")
        index = 1
    for n, tool_input in enumerate(inputs):
        encoded = json.dumps(tool_input, ensure_ascii=draw(st.booleans()))
        pieces = split(encoded, draw(st.lists(st.integers(min_value=0), max_size=12)))
        stream += ev.tool_block(index + n, f"toolu_{n}", f"tool_{n}", *pieces)
    stream += [ev.message_delta("tool_use", {"output_tokens": 1}), ev.message_stop()]
    return inputs, stream


@settings(max_examples=60, deadline=None)
@given(tool_streams())
def test_any_split_of_tool_json_accumulates_to_the_same_arguments(
    case: tuple[list[dict[str, Any]], list[ev.Event]],
) -> None:
    inputs, stream = case
    translator = ChunkTranslator(created=1, request_model="m", include_usage=True)
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for name, data in stream:
        for chunk in translator.feed(name, data):
            state.handle_chunk(
                ChatCompletionChunk.model_validate(orjson.loads(orjson.dumps(chunk)))
            )
    calls = function_calls(state.get_final_completion().choices[0].message)
    assert [json.loads(arguments) for _, _, arguments in calls] == inputs
    assert [(i, name) for i, name, _ in calls] == [
        (f"toolu_{n}", f"tool_{n}") for n in range(len(inputs))
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=40),
    st.lists(st.integers(min_value=0), max_size=10),
    st.text(max_size=20),
)
def test_any_split_of_thinking_accumulates_to_the_same_block(
    thinking: str, cuts: list[int], signature: str
) -> None:
    translator = ChunkTranslator(created=1, request_model="m")
    chunks: list[dict[str, Any]] = []
    stream = [
        ev.message_start(),
        *ev.thinking_block(0, signature, *split(thinking, cuts)),
        ev.message_stop(),
    ]
    for name, data in stream:
        chunks.extend(translator.feed(name, data))
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks)
    blocks = [b for c in chunks for b in c["choices"][0]["delta"].get("thinking_blocks", [])]
    assert reasoning == thinking
    assert blocks == [
        {"index": 0, "type": "thinking", "thinking": thinking, "signature": signature}
    ]
