"""The pure core: tokenizer, directives, schema examples, prompt cache, reply decisions."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_simulator.cache import CacheUsage, PromptCache
from aiapi_simulator.directives import DirectiveError, parse_directives
from aiapi_simulator.examples import example_for
from aiapi_simulator.faults import Fault, FaultError, FaultQueue, build_fault
from aiapi_simulator.responder import (
    TextOut,
    ThinkingOut,
    ToolUseOut,
    build_reply,
    filler_text,
    prompt_text,
)
from aiapi_simulator.sse import stream_script
from aiapi_simulator.thinking import sign_thinking
from aiapi_simulator.tokens import count_prompt, count_text, split_tokens


def body(text: Any = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def reply_for(request: dict[str, Any]) -> Any:
    directives = parse_directives(prompt_text(request))
    return build_reply(request, directives, message_id="msg_1", input_tokens=0, cache=CacheUsage())


def test_a_token_is_four_characters() -> None:
    assert count_text("") == 0
    assert count_text("abcd") == 1
    assert count_text("abcde") == 2
    assert count_text("ééééé") == 2
    assert split_tokens("Echo: hi") == ["Echo", ": hi"]


def test_input_tokens_count_text_blocks_by_text_and_other_blocks_by_json() -> None:
    as_string = count_prompt(body("hello world!"))
    as_blocks = count_prompt(body([{"type": "text", "text": "hello world!"}]))
    assert as_string.total == as_blocks.total == 3
    tool = {"name": "f", "input_schema": {"type": "object"}}
    with_tool = count_prompt(body("hello world!", tools=[tool]))
    # {"input_schema":{"type":"object"},"name":"f"} is 45 characters -> 12 tokens
    assert with_tool.total == 3 + 12


def test_cache_breakpoints_cover_the_prefix_up_to_the_marked_segment() -> None:
    request = body(
        "tail",
        system=[
            {"type": "text", "text": "x" * 40, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "y" * 8, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
    )
    prompt = count_prompt(request)
    assert prompt.total == 10 + 2 + 1
    assert [(b.prefix_tokens, b.ttl) for b in prompt.breakpoints] == [(10, "5m"), (12, "1h")]


def test_prompt_cache_writes_then_reads_and_expires() -> None:
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    request = body([{"type": "text", "text": "z" * 400, "cache_control": {"type": "ephemeral"}}])
    prompt = count_prompt(request)
    assert cache.apply("k1", prompt) == CacheUsage(creation_5m=100)
    assert cache.apply("k1", prompt) == CacheUsage(read=100)
    assert cache.apply("k2", prompt) == CacheUsage(creation_5m=100)
    now[0] = 301.0
    assert cache.apply("k1", prompt) == CacheUsage(creation_5m=100)


def test_prompt_cache_reads_the_longest_cached_breakpoint_and_writes_the_rest() -> None:
    cache = PromptCache(clock=lambda: 0.0)
    first = [{"type": "text", "text": "a" * 40, "cache_control": {"type": "ephemeral"}}]
    cache.apply("k", count_prompt(body("q", system=first)))
    second = [
        *first,
        {"type": "text", "text": "b" * 80, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    assert cache.apply("k", count_prompt(body("q", system=second))) == CacheUsage(
        read=10, creation_1h=20
    )


def test_directives_are_found_removed_and_parsed() -> None:
    found = parse_directives(
        'Please [[tool: get_weather {"city": "Paris", "nested": [[1]]}]] and '
        "[[tool: now]] [[reply: Sure thing]] [[fail: 429 retry_after=3]]"
    )
    assert found.text == "Please  and"
    assert found.tools == [("get_weather", {"city": "Paris", "nested": [[1]]}), ("now", {})]
    assert found.reply == "Sure thing"
    assert found.fault == Fault("429", retry_after=3)


def test_unknown_brackets_are_plain_text() -> None:
    assert parse_directives("a [[link]] b").text == "a [[link]] b"


@pytest.mark.parametrize(
    "text",
    ["[[tokens: many]]", "[[tool: f {bad json}]]", "[[fail: 418]]", "[[reply: open"],
)
def test_malformed_directives_are_errors(text: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(text)


def test_prompt_text_reads_the_last_user_message_in_any_form() -> None:
    request = body([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    assert prompt_text(request) == "one\ntwo"
    tool_result = [{"type": "tool_result", "tool_use_id": "t", "content": "42 degrees"}]
    assert prompt_text(body(tool_result)) == "42 degrees"


def test_schema_examples_fill_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "string"},
        },
        "required": ["city", "unit", "days", "tags"],
    }
    assert example_for(schema) == {
        "city": "example",
        "unit": "celsius",
        "days": 1,
        "tags": ["example"],
    }


def test_default_reply_echoes_and_tokens_directive_sizes_the_output() -> None:
    reply = reply_for(body("hello"))
    assert reply.blocks == [TextOut("Echo: hello")]
    assert reply.usage.output_tokens == 3
    sized = reply_for(body("[[tokens: 50]]"))
    assert sized.blocks == [TextOut(filler_text(50))]
    assert sized.usage.output_tokens == 50


def test_max_tokens_cuts_text_and_drops_tools_that_do_not_fit() -> None:
    reply = reply_for(body("[[reply: abcdefghijkl]] [[tool: f]]", max_tokens=2))
    assert reply.blocks == [TextOut("abcdefgh")]
    assert (reply.stop_reason, reply.usage.output_tokens) == ("max_tokens", 2)
    fits = reply_for(body("[[reply: abcd]] [[tool: f]]", max_tokens=1))
    assert fits.stop_reason == "max_tokens"
    assert fits.blocks == [TextOut("abcd")]


def test_stop_sequence_ends_the_text_before_it() -> None:
    reply = reply_for(body("[[reply: one, two, three]] [[tool: f]]", stop_sequences=["x", "two"]))
    assert reply.blocks == [TextOut("one, ")]
    assert (reply.stop_reason, reply.stop_sequence) == ("stop_sequence", "two")


def test_thinking_comes_first_signed_and_counts_as_output() -> None:
    reply = reply_for(body("[[thinking: ponder]] [[reply: ok]]", thinking={"type": "adaptive"}))
    assert reply.blocks == [ThinkingOut("ponder", sign_thinking("ponder")), TextOut("ok")]
    assert reply.usage.output_tokens == 2 + 1


def test_forced_tool_choice_invents_input_from_the_schema() -> None:
    tools = [
        {"name": "a", "input_schema": {"type": "object"}},
        {
            "name": "b",
            "input_schema": {
                "type": "object",
                "properties": {"n": {"type": "number"}},
                "required": ["n"],
            },
        },
    ]
    reply = reply_for(body("hi", tools=tools, tool_choice={"type": "tool", "name": "b"}))
    assert len(reply.blocks) == 1
    block = reply.blocks[0]
    assert isinstance(block, ToolUseOut)
    assert (block.name, block.input, reply.stop_reason) == ("b", {"n": 1.5}, "tool_use")
    first = reply_for(body("hi", tools=tools, tool_choice={"type": "any"})).blocks[0]
    assert isinstance(first, ToolUseOut)
    assert first.name == "a"


def test_stream_script_has_one_delta_per_output_token() -> None:
    reply = reply_for(body('[[reply: abcdefghij]] [[tool: f {"k": 1}]]'))
    script = stream_script(reply)
    # text: 3 tokens, tool input {"k":1} (7 chars): 2 tokens
    assert sum(script.deltas) == reply.usage.output_tokens == 5
    assert script.frames[0].startswith(b"event: message_start\n")
    assert script.frames[2] == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert script.frames[-1] == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_fault_queue_matches_keys_and_counts_down() -> None:
    queue = FaultQueue()
    queue.arm(build_fault("529", {}), 2, "key-a")
    assert queue.take("key-b") is None
    assert queue.take("key-a") == Fault("529")
    assert queue.take("key-a") == Fault("529")
    assert queue.take("key-a") is None
    queue.arm(build_fault("401", {}), 1, None, "count_tokens")
    assert queue.take("key-a") is None
    assert queue.take("key-a", "count_tokens") == Fault("401")
    with pytest.raises(FaultError):
        build_fault("stall", {"seconds": "soon"})
    with pytest.raises(FaultError):
        queue.arm(build_fault("disconnect", {}), 1, None, "count_tokens")


def test_prebuilt_delta_frames_equal_the_generic_framing() -> None:
    from aiapi_simulator.sse import frame

    reply = reply_for(body('[[reply: "quoted" é\\n]] [[tool: f {"k": "v"}]]'))
    script = stream_script(reply)
    deltas = [f for f, is_delta in zip(script.frames, script.deltas, strict=True) if is_delta]
    assert deltas[0] == frame(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": '"quo'},
        },
    )
    assert deltas[-1] == frame(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "}"},
        },
    )
