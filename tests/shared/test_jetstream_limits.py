"""Streams and buckets are declared with the replicas and limits of the settings, and refuse
rather than drop when full."""

from __future__ import annotations

import pytest
from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.jetstream_limits import DEFAULT_STREAM_LIMITS, JetStreamLimits, jetstream_limits
from aiapi_shared.settings import BaseServiceSettings
from nats.js import api


def test_the_settings_give_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIAPI_NATS_REPLICAS", "3")
    monkeypatch.setenv("AIAPI_NATS_USAGE_MAX_BYTES", str(10 << 30))
    monkeypatch.setenv("AIAPI_NATS_USAGE_MAX_AGE_S", "86400")
    monkeypatch.setenv("AIAPI_NATS_KV_MAX_BYTES", str(1 << 20))
    limits = jetstream_limits(BaseServiceSettings())
    assert limits.replicas == 3
    assert limits.for_stream("USAGE").max_bytes == 10 << 30
    assert limits.for_stream("USAGE").max_age_s == 86400
    assert limits.for_stream("BILLING") == DEFAULT_STREAM_LIMITS["BILLING"]
    assert limits.kv_max_bytes == 1 << 20


@pytest.mark.parametrize("value", ["0", "6", "x"])
def test_replicas_out_of_range_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIAPI_NATS_REPLICAS", value)
    with pytest.raises(ValueError, match="nats_replicas"):
        BaseServiceSettings()


async def test_streams_and_buckets_are_declared_with_the_limits(bus: Bus) -> None:
    bus.limits = JetStreamLimits(
        replicas=1,
        streams={
            name: type(limit)(max_bytes=limit.max_bytes // 2, max_age_s=3600.0)
            for name, limit in DEFAULT_STREAM_LIMITS.items()
        },
        kv_max_bytes=1 << 20,
    )
    await bus.ensure_streams()
    for name, limit in DEFAULT_STREAM_LIMITS.items():
        config = (await bus.js.stream_info(name)).config
        assert config.max_bytes == limit.max_bytes // 2
        assert config.max_age == 3600.0
        assert config.discard == api.DiscardPolicy.NEW
        assert config.num_replicas == 1
    await bus.ensure_kv("aiapi_limits_test")
    config = (await bus.js.stream_info("KV_aiapi_limits_test")).config
    assert config.max_bytes == 1 << 20
    assert config.discard == api.DiscardPolicy.NEW
    assert config.max_age in (None, 0, 0.0)  # a key record never expires


async def test_changed_limits_update_an_existing_stream(bus: Bus) -> None:
    await bus.ensure_streams()
    bus.limits = JetStreamLimits(
        streams={
            **DEFAULT_STREAM_LIMITS,
            "USAGE": type(DEFAULT_STREAM_LIMITS["USAGE"])(4096, 3600.0),
        }
    )
    await bus.ensure_streams()
    config = (await bus.js.stream_info("USAGE")).config
    assert (config.max_bytes, config.max_age) == (4096, 3600.0)

    async def fill() -> None:
        for n in range(64):
            await bus.publish("usage.v1.test", b"x" * 512, f"m{n}")

    with pytest.raises(BusUnavailable, match="refused"):  # full: refused, nothing dropped
        await fill()
    assert (await bus.js.stream_info("USAGE")).state.first_seq == 1


def test_an_age_under_an_hour_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIAPI_NATS_USAGE_MAX_AGE_S", "60")
    with pytest.raises(ValueError, match="nats_usage_max_age_s"):
        BaseServiceSettings()
