"""The adaptive linger's decisions (pure: no clock, no I/O)."""

from __future__ import annotations

from aiapi_shared.bus import _batch_linger
from aiapi_shared.linger import AdaptiveLinger


def test_short_batches_grow_the_wait_up_to_the_ceiling() -> None:
    linger = AdaptiveLinger(0.05, 0.5, target=32, batch=256)
    waits = [linger.after(1) for _ in range(6)]
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def test_a_full_batch_means_no_wait_and_starts_over_from_the_floor() -> None:
    linger = AdaptiveLinger(0.05, 0.5, target=32, batch=256)
    for _ in range(5):
        linger.after(3)
    assert linger.current_s == 0.5
    assert linger.after(256) == 0.0
    assert linger.current_s == 0.05
    assert linger.after(1) == 0.1


def test_batches_of_the_target_size_shrink_the_wait_to_the_floor() -> None:
    linger = AdaptiveLinger(0.05, 0.5, target=32, batch=256)
    for _ in range(5):
        linger.after(2)
    assert [linger.after(40) for _ in range(5)] == [0.25, 0.125, 0.0625, 0.05, 0.05]


def test_events_further_apart_than_the_ceiling_are_not_held() -> None:
    # A wait that gathers nothing is not worth its delay: back to the floor.
    linger = AdaptiveLinger(0.05, 0.5, target=32, batch=256)
    for _ in range(5):
        linger.after(1, waited_s=0.1)
    assert linger.current_s == 0.5
    assert linger.after(1, waited_s=2.0) == 0.05


def test_an_empty_fetch_waits_no_more() -> None:
    linger = AdaptiveLinger(0.05, 0.5, target=32, batch=256)
    linger.after(1)
    assert linger.after(0, waited_s=5.0) == 0.0
    assert linger.current_s == 0.1  # unchanged by a fetch that found nothing


def test_equal_bounds_are_the_fixed_linger_and_zero_is_none() -> None:
    fixed = AdaptiveLinger(0.05, 0.05, target=32, batch=256)
    assert [fixed.after(n) for n in (1, 100, 1)] == [0.05, 0.05, 0.05]
    assert fixed.after(256) == 0.0
    none = AdaptiveLinger(0.0, 0.0, target=32, batch=256)
    assert [none.after(n) for n in (1, 2, 300)] == [0.0, 0.0, 0.0]


def test_a_ceiling_below_the_floor_is_the_floor() -> None:
    linger = AdaptiveLinger(0.2, 0.1, target=4, batch=8)
    assert linger.after(1) == 0.2


def test_a_consumer_loop_steers_towards_the_target_it_is_given() -> None:
    """``Bus.consume_batches(linger_target=...)``: a batch of 64 is enough for the bus's default
    target (32), so the wait falls; short of a target of 128, so it grows."""
    default = _batch_linger(0.05, 0.5, 256)
    bigger = _batch_linger(0.05, 0.5, 256, 128)
    for linger in (default, bigger):
        linger.after(10)  # a short batch: 0.1 s
    assert default.after(64) < 0.1 < bigger.after(64)
