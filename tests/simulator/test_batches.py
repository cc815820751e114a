"""The simulated Message Batches API, through the official SDK: create, poll to the end, results
with usage at the batch tier, cancel, list pages, delete, and batches private to their key."""

from __future__ import annotations

import time

import anthropic
import httpx
import pytest

from tests.simulator.conftest import HEADERS


def _requests(count: int) -> list[dict[str, object]]:
    return [
        {
            "custom_id": f"item-{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"Say hello number {i}"}],
            },
        }
        for i in range(count)
    ]


def _ended(client: anthropic.Anthropic, batch_id: str) -> anthropic.types.messages.MessageBatch:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.05)
    raise AssertionError("the batch did not end")


def test_a_batch_ends_with_one_result_per_request(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    bad = {"custom_id": "bad", "params": {"model": "claude-haiku-4-5", "messages": []}}
    created = client.messages.batches.create(requests=[*_requests(2), bad])  # type: ignore[list-item]
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 3
    assert created.results_url is None
    ended = _ended(client, created.id)
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.processing) == (2, 1, 0)
    assert ended.results_url is not None and ended.ended_at is not None
    results = {r.custom_id: r.result for r in client.messages.batches.results(created.id)}
    assert set(results) == {"item-0", "item-1", "bad"}
    ok = results["item-0"]
    assert ok.type == "succeeded"
    assert ok.message.usage.service_tier == "batch"
    assert ok.message.usage.input_tokens > 0 and ok.message.usage.output_tokens > 0
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"
    raw = http.get(f"/v1/messages/batches/{created.id}/results", headers=HEADERS)
    assert raw.headers["content-type"] == "application/x-jsonl"
    assert len(raw.text.strip().splitlines()) == 3


def test_cancel_ends_the_batch_with_the_unfinished_requests_canceled(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    http.post("/_sim/batches", json={"processing_s": 30}).raise_for_status()
    created = client.messages.batches.create(requests=_requests(3))  # type: ignore[arg-type]
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status in ("canceling", "ended")
    assert canceling.cancel_initiated_at is not None
    ended = _ended(client, created.id)
    assert ended.request_counts.canceled == 3
    kinds = {r.result.type for r in client.messages.batches.results(created.id)}
    assert kinds == {"canceled"}


def test_batches_belong_to_the_key_that_created_them(
    client: anthropic.Anthropic, simulator_url: str
) -> None:
    created = client.messages.batches.create(requests=_requests(1))  # type: ignore[arg-type]
    with anthropic.Anthropic(
        base_url=simulator_url, api_key="sk-ant-other", max_retries=0
    ) as other:
        with pytest.raises(anthropic.NotFoundError):
            other.messages.batches.retrieve(created.id)
        assert other.messages.batches.list().data == []


def test_list_pages_newest_first_and_delete_after_the_end(client: anthropic.Anthropic) -> None:
    ids = [client.messages.batches.create(requests=_requests(1)).id for _ in range(3)]  # type: ignore[arg-type]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]]
    assert first.has_more is True
    assert [b.id for b in client.messages.batches.list(limit=2, after_id=ids[1]).data] == [ids[0]]
    assert [b.id for b in client.messages.batches.list(before_id=ids[0]).data] == [ids[2], ids[1]]
    assert [b.id for b in client.messages.batches.list(limit=1)] == ids[::-1]  # auto-paging


def test_delete_only_after_the_end(client: anthropic.Anthropic, http: httpx.Client) -> None:
    http.post("/_sim/batches", json={"processing_s": 30}).raise_for_status()
    slow = client.messages.batches.create(requests=_requests(1))  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(slow.id)
    http.post("/_sim/batches", json={"processing_s": 0}).raise_for_status()
    done = client.messages.batches.create(requests=_requests(1))  # type: ignore[arg-type]
    deleted = client.messages.batches.delete(done.id)
    assert (deleted.id, deleted.type) == (done.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(done.id)
