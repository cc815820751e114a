"""The pure modules: body edits on bytes, the SSE reader, meters, the pool's health rules."""

from __future__ import annotations

import orjson
import pytest
from aiapi_edge.body import insert_first_member, read_messages_body, replace_top_level_string
from aiapi_edge.errors import GatewayError
from aiapi_edge.estimate import MARKERS
from aiapi_edge.headers import upstream_request_headers
from aiapi_edge.metering import UsageMeter, usage_from_anthropic
from aiapi_edge.peek import mentions
from aiapi_edge.pool import UpstreamPool
from aiapi_edge.settings import EdgeSettings, UpstreamKey
from aiapi_edge.sse import SseEvent, SseReader
from hypothesis import given
from hypothesis import strategies as st


def test_max_tokens_is_inserted_without_touching_other_bytes() -> None:
    raw = b' {  "model":"m", "messages":[{"content":"\\u00e9"}]}'
    body = read_messages_body(raw)
    assert body.raw == b' {"max_tokens":4096,  "model":"m", "messages":[{"content":"\\u00e9"}]}'
    assert body.max_tokens == 4096
    assert insert_first_member(b"{ }", b'"a":1') == b'{"a":1 }'


def test_a_present_max_tokens_is_kept_and_bad_bodies_are_400() -> None:
    assert (
        read_messages_body(b'{"model":"m","max_tokens":7}').raw == b'{"model":"m","max_tokens":7}'
    )
    for raw in (b"[1]", b"{", b'{"max_tokens":5}', b'{"model":"m","max_tokens":0}'):
        with pytest.raises(GatewayError) as refused:
            read_messages_body(raw)
        assert refused.value.status == 400


def test_only_the_top_level_model_value_is_replaced() -> None:
    raw = b'{"messages":[{"model":"x"}],"metadata":{"model":"y"}, "model" : "alias-1","z":"model"}'
    out = replace_top_level_string(raw, "model", "claude-haiku-4-5")
    assert out == raw.replace(b'"alias-1"', b'"claude-haiku-4-5"')
    assert orjson.loads(out)["messages"] == [{"model": "x"}]


def test_the_sse_reader_finds_events_across_chunk_boundaries() -> None:
    stream = (
        b'event: message_start\ndata: {"a":1}\n\nevent: ping\ndata: {}\n\n'
        b'event: message_delta\r\ndata: {"b":2}\r\n\r\n'
    )
    reader = SseReader()
    events = []
    for i in range(0, len(stream), 7):
        events += reader.feed(stream[i : i + 7])
    assert events == [
        (b"message_start", b'{"a":1}'),
        (b"ping", b"{}"),
        (b"message_delta", b'{"b":2}'),
    ]
    assert reader.at_boundary
    reader.feed(b"event: x\n")
    assert not reader.at_boundary


def test_a_crlf_cut_between_two_reads_is_one_line_end() -> None:
    reader = SseReader()
    events = reader.feed(b"event: message_delta\r")
    events += reader.feed(b"\ndata: {}\r\n\r")
    events += reader.feed(b"\nevent: message_stop\r\ndata: {}\r\n\r\n")
    assert events == [(b"message_delta", b"{}"), (b"message_stop", b"{}")]
    assert reader.at_boundary


_BLOCKS = st.sampled_from(
    [
        b'event: message_start\ndata: {"a":1}\n\n',
        b"event: content_block_delta\ndata: {}\n\n",
        b"event:content_block_delta\ndata:{}\n\n",  # no spaces
        b"event: message_delta\r\ndata: {}\r\n\r\n",
        b"event: ping\ndata: 1\ndata: 2\n\n",  # two data lines
        b"data: first\nevent: message_stop\n\n",  # the name after the data
        b"event: ping\nevent: message_delta\ndata: {}\n\n",  # the last name counts
        b"event: message_delta\ndata: x\n: comment\n\n",
        b": only a comment\n\n",
        b"event: error\n\n",
        b"event: message_start\ndata:\n\n",
    ]
)


@given(st.lists(_BLOCKS, max_size=12), st.lists(st.integers(1, 40), max_size=30))
def test_a_reader_keeping_some_events_finds_exactly_those_the_full_reader_finds(
    blocks: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(blocks)
    keep = frozenset((b"message_start", b"message_delta", b"message_stop", b"error"))
    full, kept = SseReader(), SseReader(keep)
    everything: list[SseEvent] = []
    chosen: list[SseEvent] = []
    at = 0
    for size in [*cuts, len(stream)]:  # chunks cut anywhere, the rest in the last one
        piece, at = stream[at : at + size], at + size
        everything += full.feed(piece)
        chosen += kept.feed(piece)
        assert kept.at_boundary == full.at_boundary
    assert chosen == [event for event in everything if event[0] in keep]
    assert len(everything) == sum(not block.startswith(b":") for block in blocks)


def test_later_usage_replaces_earlier_usage_and_the_cache_split_defaults_to_5m() -> None:
    meter = UsageMeter()
    start = {
        "message": {
            "usage": {
                "input_tokens": 10,
                "output_tokens": 1,
                "cache_creation_input_tokens": 30,
                "cache_read_input_tokens": 4,
            }
        }
    }
    meter.event(b"message_start", orjson.dumps(start))
    meter.event(b"message_delta", b'{"usage":{"output_tokens":25}}')
    meter.event(b"message_delta", b'{"usage":{"output_tokens":40}}')
    meter.event(b"message_stop", b"{}")
    usage = meter.result()
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (10, 40, 4)
    assert (usage.cache_creation_5m_input_tokens, usage.cache_creation_1h_input_tokens) == (30, 0)
    assert meter.complete
    split = usage_from_anthropic(
        {
            "cache_creation_input_tokens": 9,
            "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 7},
            "output_tokens_details": {"thinking_tokens": 3},
        }
    )
    assert (split.cache_creation_5m_input_tokens, split.cache_creation_1h_input_tokens) == (2, 7)
    assert split.thinking_tokens == 3


def test_the_meters_are_computed_once_and_follow_every_change_of_the_usage() -> None:
    """The cost headers, the pool's count and the usage event read the same meters: computed
    once, and computed again after anything changes the usage (an event, a cut stream's
    estimate assigned by the hold guard)."""
    meter = UsageMeter()
    meter.event(b"message_start", b'{"message":{"usage":{"input_tokens":10,"output_tokens":1}}}')
    first = meter.meters()
    assert meter.meters() is first
    assert (first["input_tokens"], first["output_tokens"]) == (10, 1)
    meter.event(b"message_delta", b'{"usage":{"output_tokens":25}}')
    assert meter.meters()["output_tokens"] == 25
    meter.usage = {**meter.usage, "output_tokens": 60}  # as HoldGuard.meter_cut does
    assert meter.meters()["output_tokens"] == 60
    meter.message({"usage": {"input_tokens": 3, "output_tokens": 2}})
    assert (meter.meters()["input_tokens"], meter.meters()["output_tokens"]) == (3, 2)


@given(
    st.lists(
        st.sampled_from([*MARKERS, b'"', b"image", b"\\", b"{", b"speed", b"x", b"."]), max_size=40
    ),
    st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=3),
)
def test_one_pass_for_every_marker_finds_what_a_pass_per_marker_finds(
    pieces: list[bytes], extra: list[bytes]
) -> None:
    raw = b"".join(pieces)
    for markers in (MARKERS, (b'"metadata"',), tuple(extra), (b"a.b", b"[", b"(?")):
        assert mentions(raw, markers) == any(marker in raw for marker in markers)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pool(clock: Clock) -> UpstreamPool:
    keys = [UpstreamKey("http://a", "key-a-000000"), UpstreamKey("http://b", "key-b-000000")]
    return UpstreamPool(keys, clock=clock, failure_threshold=2, open_s=5, max_open_s=20)


def test_round_robin_and_rest_after_429() -> None:
    clock = Clock()
    p = pool(clock)
    assert [p.acquire(set()), p.acquire(set()), p.acquire(set())] == [0, 1, 0]
    p.record(0, "rate_limited", 3)
    assert p.acquire(set()) == 1 and p.acquire(set()) == 1
    assert p.rest_remaining() == 3
    clock.now = 3.1
    assert p.acquire({1}) == 0


def test_the_circuit_opens_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    p = pool(clock)
    p.record(0, "server_error")
    p.record(0, "server_error")
    assert p.acquire({1}) is None
    assert p.health()[0][1] == "open"
    clock.now = 5.5
    assert p.acquire({1}) == 0  # the probe
    assert p.acquire({1}) is None  # only one at a time
    p.record(0, "server_error")  # failed probe: open twice as long
    clock.now = 15.0
    assert p.acquire({1}) is None
    clock.now = 15.6
    assert p.acquire({1}) == 0
    p.record(0, "ok")
    assert p.acquire({1}) == 0 and p.acquire({1}) == 0


def test_a_rejected_key_is_out_until_rechecked() -> None:
    clock = Clock()
    p = pool(clock)
    p.record(1, "key_rejected")
    assert [p.acquire(set()) for _ in range(3)] == [0, 0, 0]
    assert p.rest_remaining() is None


def test_settings_parse_the_key_pool_with_per_key_urls() -> None:
    settings = EdgeSettings(
        upstream_url="https://api.example", upstream_api_keys=" k1 , https://eu.example/|k2,"
    )
    assert settings.upstream_keys() == (
        UpstreamKey("https://api.example", "k1"),
        UpstreamKey("https://eu.example", "k2"),
    )


def test_client_credentials_never_reach_the_upstream() -> None:
    headers = upstream_request_headers(
        [
            (b"Authorization", b"Bearer sk-cc-x"),
            (b"x-api-key", b"sk-cc-y"),
            (b"cookie", b"c"),
            (b"anthropic-beta", b"a"),
            (b"Anthropic-Beta", b"b"),
        ],
        "upstream",
    )
    assert headers == {
        "anthropic-beta": "a,b",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "user-agent": "aiapi-edge",
        "x-api-key": "upstream",
    }
