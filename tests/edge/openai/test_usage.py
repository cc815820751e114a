"""The one usage translation: cache tokens counted once, later stream values replacing earlier."""

from __future__ import annotations

from aiapi_edge.openai import merge_usage, openai_usage


def test_cache_tokens_are_part_of_prompt_tokens_exactly_once() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 300,
        "cache_read_input_tokens": 10_000,
        "cache_creation_input_tokens": 2_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1_500, "ephemeral_1h_input_tokens": 500},
    }
    assert openai_usage(usage) == {
        "prompt_tokens": 12_050,
        "completion_tokens": 300,
        "total_tokens": 12_350,
        "prompt_tokens_details": {"cached_tokens": 10_000, "cache_write_tokens": 2_000},
    }


def test_cache_write_falls_back_to_the_ttl_breakdown() -> None:
    usage = {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70},
    }
    result = openai_usage(usage)
    assert (result["prompt_tokens"], result["prompt_tokens_details"]) == (
        101,
        {"cached_tokens": 0, "cache_write_tokens": 100},
    )


def test_reasoning_tokens_come_from_the_upstream_or_the_caller_never_a_guess() -> None:
    reported = {
        "input_tokens": 1,
        "output_tokens": 90,
        "output_tokens_details": {"thinking_tokens": 60},
    }
    assert openai_usage(reported)["completion_tokens_details"] == {"reasoning_tokens": 60}
    assert openai_usage(reported, thinking_tokens=61)["completion_tokens_details"] == {
        "reasoning_tokens": 61
    }
    assert "completion_tokens_details" not in openai_usage({"input_tokens": 1, "output_tokens": 90})


def test_missing_and_null_fields_count_as_zero() -> None:
    assert openai_usage(
        {"input_tokens": 5, "output_tokens": None, "cache_read_input_tokens": None}
    ) == {
        "prompt_tokens": 5,
        "completion_tokens": 0,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    }


def test_later_usage_replaces_earlier_never_adds() -> None:
    start = {
        "input_tokens": 40,
        "output_tokens": 1,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 0,
    }
    delta = {"output_tokens": 120, "input_tokens": None}
    merged = merge_usage(start, delta)
    assert merged == {
        "input_tokens": 40,
        "output_tokens": 120,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 0,
    }
    assert openai_usage(merged)["prompt_tokens"] == 940
