"""The pool while the operator changes it (pure): keys join and leave without disturbing the
others, attempts in flight on a key that left report to nobody, weights bias the choice (round-
robin and affinity alike), a key with a model list serves only those models, and the operator's
records are opened with the edges' private key only."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiapi_edge.affinity import ranking
from aiapi_edge.pool import UpstreamPool
from aiapi_edge.settings import UpstreamKey
from aiapi_edge.upstream_keys import UpstreamKeys
from aiapi_shared.events.records_v1 import UpstreamKeyRecord
from aiapi_shared.upstream_seal import SealError, generate_keypair, seal, unseal

A = UpstreamKey("http://u", "sk-ant-key-aaaa1111")
B = UpstreamKey("http://u", "sk-ant-key-bbbb2222")
C = UpstreamKey("http://u", "sk-ant-key-cccc3333", key_id="uk_c", source="operator")


def test_a_key_joining_or_leaving_keeps_the_others_slots_and_health() -> None:
    pool = UpstreamPool([A, B])
    pool.record(1, "key_rejected")
    pool.replace([A, B, C])
    assert [pool.key(slot).key_id for slot in (0, 1, 2)] == [A.key_id, B.key_id, "uk_c"]
    assert [health for _, health in pool.health()] == ["healthy", "disabled", "healthy"]
    in_flight = pool.acquire(set(), model=None)
    pool.replace([B, C])  # A leaves while an attempt holds it
    assert in_flight == 0
    pool.record(in_flight, "server_error")  # to nobody
    pool.release(in_flight)
    assert all(pool.acquire(set()) == 2 for _ in range(3))  # B rests; A is gone
    pool.replace([A, B, C])  # A back: a new slot, fresh health
    assert {pool.key(slot).key_id for slot in (1, 2, 3)} == {A.key_id, B.key_id, "uk_c"}


def test_a_key_that_stays_takes_its_new_settings() -> None:
    pool = UpstreamPool([A, C])
    pool.replace([A, UpstreamKey(C.base_url, C.api_key, weight=5, key_id="uk_c")])
    assert pool.key(1).weight == 5


def test_weights_bias_round_robin_in_proportion() -> None:
    heavy = UpstreamKey("http://u", "sk-ant-key-heavy-000", weight=3)
    pool = UpstreamPool([A, heavy])
    chosen = Counter(pool.acquire(set()) for _ in range(400))
    assert chosen == {0: 100, 1: 300}


def test_weights_bias_affinity_and_equal_weights_keep_the_old_ranking() -> None:
    keys = [UpstreamKey("http://u", f"sk-ant-key-{i:04d}") for i in range(3)]
    heavy = [*keys[:2], UpstreamKey("http://u", keys[2].api_key, weight=4)]
    firsts = Counter(ranking(f"acct|session|{i}", heavy)[0] for i in range(6000))
    assert 3400 < firsts[2] < 4600  # 4 / 6 of the conversations
    plain = Counter(ranking(f"acct|session|{i}", keys)[0] for i in range(6000))
    assert all(1700 < plain[i] < 2300 for i in range(3))
    # Raising one key's weight only moves conversations to it.
    for i in range(500):
        before, after = ranking(f"c{i}", keys)[0], ranking(f"c{i}", heavy)[0]
        assert after in (before, 2)


def test_a_key_with_a_model_list_serves_only_those_models() -> None:
    haiku_only = UpstreamKey("http://u", "sk-ant-key-haiku-00", models=("claude-haiku-4-5",))
    pool = UpstreamPool([haiku_only, A])
    assert {pool.acquire(set(), model="claude-opus-4-7") for _ in range(4)} == {1}
    assert {pool.acquire(set(), model="claude-haiku-4-5") for _ in range(4)} == {0, 1}
    assert pool.acquire({1}, model="claude-opus-4-7") is None
    assert pool.acquire(set(), conversation="c", model="claude-opus-4-7") == 1


def test_the_seal_opens_only_with_its_private_key() -> None:
    private, public = generate_keypair()
    other, _ = generate_keypair()
    sealed = seal(public, "sk-ant-secret-xyz")
    assert "sk-ant-secret-xyz" not in sealed
    assert unseal(private, sealed) == "sk-ant-secret-xyz"
    with pytest.raises(SealError) as refused:
        unseal(other, sealed)
    assert "sk-ant" not in str(refused.value)
    with pytest.raises(SealError):
        seal("not a key", "x")


def _record(**fields: object) -> bytes:
    base: dict[str, object] = {
        "id": "uk_1",
        "source": "operator",
        "hint": "...9999",
        "updated_at": datetime.now(UTC),
    }
    return UpstreamKeyRecord.model_validate({**base, **fields}).model_dump_json().encode()


def test_the_operators_records_become_the_pools_keys(caplog: pytest.LogCaptureFixture) -> None:
    private, public = generate_keypair()
    applied: list[list[str]] = []
    keys = UpstreamKeys(
        [A],
        default_base_url="http://default/",
        private_key=private,
        apply=lambda ks: applied.append([k.key_id for k in ks]),
    )
    secret = "sk-ant-runtime-9999"
    keys.on_change("uk_1", _record(sealed_key=seal(public, secret), weight=7, models=["m"]))
    added = keys.find("uk_1")
    assert added is not None and added.api_key == secret and added.weight == 7
    assert added.base_url == "http://default" and added.models == ("m",)
    assert applied[-1] == [A.key_id, "uk_1"]
    keys.on_change("uk_1", _record(sealed_key=seal(public, secret), enabled=False))
    assert applied[-1] == [A.key_id] and keys.find("uk_1") is not None  # testable still
    # The setting's own key: disabled, then removed, by records without a key.
    keys.on_change(A.key_id, _record(id=A.key_id, source="env", enabled=False))
    assert applied[-1] == []
    assert [k.key_id for k in keys.env_keys()] == [A.key_id]
    keys.on_change(A.key_id, _record(id=A.key_id, source="env", removed=True))
    assert keys.env_keys() == []
    keys.on_change(A.key_id, None)
    assert applied[-1] == [A.key_id]
    # A record sealed to another pair is left out, and what is logged holds no key.
    _, stranger = generate_keypair()
    with caplog.at_level(logging.ERROR):
        keys.on_change("uk_2", _record(id="uk_2", sealed_key=seal(stranger, "sk-ant-other-1")))
    assert "uk_2" not in applied[-1] and "does not open" in caplog.text
    assert "sk-ant-other-1" not in caplog.text
    keys.on_change("uk_3", b"{not json")
    assert "uk_3" not in applied[-1]
