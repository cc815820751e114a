"""The NATS permission model agrees with the code it guards, and grants what issue 11 requires:
only accounts writes key records, only payments reports deposits, only billing answers billing."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiapi_accounts.consumers import PLAN_DURABLE, USAGE_DURABLE
from aiapi_accounts.notices import BALANCE_LOW_DURABLE, DEPOSIT_DURABLE
from aiapi_billing import consumers as billing_consumers
from aiapi_shared import batches_api, billing_api, console_api, payments_api
from aiapi_shared.admission import ADMIT_SUBJECT
from aiapi_shared.bus import STREAMS
from aiapi_shared.edge_api import UPSTREAM_TEST_SUBJECT
from aiapi_shared.events import ALL_EVENTS
from aiapi_shared.events.records_v1 import (
    BALANCES_BUCKET,
    CATALOGUE_BUCKET,
    KEYS_BUCKET,
    UPSTREAM_KEYS_BUCKET,
    UPSTREAM_STATUS_BUCKET,
)
from aiapi_shared.nats_permissions import (
    DURABLES,
    REQUESTS,
    SERVICES,
    STREAM_OWNERS,
    markdown_table,
    may_publish,
    may_subscribe,
    permissions_for,
    render_server_auth,
    subject_matches,
)


def test_subject_matching_follows_nats_wildcards() -> None:
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*.c", "a.b.d")
    assert subject_matches("a.>", "a.b.c")
    assert not subject_matches("a.>", "a")
    assert not subject_matches("a.b", "a.b.c")
    assert subject_matches("$KV.aiapi_keys.>", "$KV.aiapi_keys.abc")


def test_the_streams_are_the_bus_streams() -> None:
    assert {s.name: s.subjects for s in STREAMS} == {
        name: (subjects,) for name, (subjects, _) in STREAM_OWNERS.items()
    }


def test_the_durables_are_the_consumers_the_services_declare() -> None:
    assert ("USAGE", USAGE_DURABLE) in DURABLES["accounts"]
    assert ("BILLING", PLAN_DURABLE) in DURABLES["accounts"]
    assert ("BILLING", DEPOSIT_DURABLE) in DURABLES["accounts"]
    assert ("BILLING", BALANCE_LOW_DURABLE) in DURABLES["accounts"]
    # billing's are literals in its consumers module; read them from there
    source = Path(billing_consumers.__file__).read_text("utf-8")
    for stream, durable in DURABLES["billing"]:
        assert f'"{stream}", "{durable}"' in source or f'durable="{durable}"' in source, durable


def test_each_event_is_published_by_its_owner_alone() -> None:
    owner_of = {subjects: owner for subjects, owner in STREAM_OWNERS.values()}
    for event in ALL_EVENTS:
        owners = [s for s in SERVICES if may_publish(s, event.subject)]
        expected = [o for pattern, o in owner_of.items() if subject_matches(pattern, event.subject)]
        assert owners == expected, event.subject


@pytest.mark.parametrize("service", ["edge", "billing", "payments"])
def test_no_service_but_accounts_writes_key_records(service: str) -> None:
    assert not may_publish(service, f"$KV.{KEYS_BUCKET}.anything")
    assert not may_publish(service, f"$JS.API.STREAM.UPDATE.KV_{KEYS_BUCKET}")
    assert not may_publish(service, f"$JS.API.STREAM.DELETE.KV_{KEYS_BUCKET}")
    assert not may_publish(service, f"$JS.API.STREAM.PURGE.KV_{KEYS_BUCKET}")
    assert may_publish("accounts", f"$KV.{KEYS_BUCKET}.anything")


def test_the_edge_asks_but_never_adjusts_answers_billing_or_writes() -> None:
    assert may_publish("edge", ADMIT_SUBJECT)
    assert may_publish("edge", "usage.v1.request.recorded")
    assert not may_publish("edge", billing_api.ADJUST_SUBJECT)
    assert not may_publish("edge", billing_api.PURCHASE_PLAN_SUBJECT)
    assert not may_publish("edge", "payments.v1.deposit.confirmed")
    assert not may_subscribe("edge", ADMIT_SUBJECT)
    for bucket in (BALANCES_BUCKET, CATALOGUE_BUCKET, UPSTREAM_KEYS_BUCKET):
        assert not may_publish("edge", f"$KV.{bucket}.x")
    # It answers one thing: the operator's test of an upstream key, asked by accounts alone.
    assert permissions_for("edge").subscribe == ("_INBOX.edge.>", "rpc.edge.>")
    for service in SERVICES:
        assert may_publish(service, UPSTREAM_TEST_SUBJECT) == (service == "accounts")
        assert may_subscribe(service, UPSTREAM_TEST_SUBJECT) == (service == "edge")


def test_the_upstream_pool_is_written_by_accounts_and_its_status_by_the_edges() -> None:
    for service in SERVICES:
        assert may_publish(service, f"$KV.{UPSTREAM_KEYS_BUCKET}.uk_1") == (service == "accounts")
        assert may_publish(service, f"$KV.{UPSTREAM_STATUS_BUCKET}.edge-1") == (service == "edge")
    # Each reads (watches) the other's bucket.
    assert may_publish("edge", f"$JS.API.CONSUMER.CREATE.KV_{UPSTREAM_KEYS_BUCKET}")
    assert may_publish("accounts", f"$JS.API.CONSUMER.CREATE.KV_{UPSTREAM_STATUS_BUCKET}")
    assert not may_publish("billing", f"$JS.API.CONSUMER.CREATE.KV_{UPSTREAM_KEYS_BUCKET}")


def test_only_billing_answers_billing_and_only_payments_answers_payments() -> None:
    for service in SERVICES:
        assert may_subscribe(service, ADMIT_SUBJECT) == (service == "billing")
        assert may_subscribe(service, payments_api.SET_RATE_SUBJECT) == (service == "payments")
        assert may_publish(service, "payments.v1.deposit.confirmed") == (service == "payments")


def test_consumers_are_driven_and_acked_by_their_owner_only() -> None:
    for service in SERVICES:
        mine = service == "billing"
        assert may_publish(service, "$JS.API.CONSUMER.MSG.NEXT.USAGE.billing-settlement") == mine
        assert may_publish(service, "$JS.ACK.USAGE.billing-settlement.1.2.3.4.5") == mine
        assert (
            may_publish(service, "$JS.API.CONSUMER.CREATE.USAGE.billing-settlement.usage.v1.>")
            == mine
        )


def test_nobody_deletes_or_purges_and_only_owners_update_streams() -> None:
    for service in SERVICES:
        for stream, (_, owner) in STREAM_OWNERS.items():
            assert may_publish(service, f"$JS.API.STREAM.CREATE.{stream}")
            assert may_publish(service, f"$JS.API.STREAM.UPDATE.{stream}") == (owner == service)
            assert not may_publish(service, f"$JS.API.STREAM.DELETE.{stream}")
            assert not may_publish(service, f"$JS.API.STREAM.PURGE.{stream}")


def test_each_service_reads_only_its_own_inbox() -> None:
    for service in SERVICES:
        for other in SERVICES:
            assert may_subscribe(service, f"_INBOX.{other}.abc.1") == (service == other)
        assert not may_subscribe(service, "_INBOX.abc")


def test_an_unknown_service_gets_nothing() -> None:
    with pytest.raises(ValueError, match="no NATS permissions"):
        permissions_for("admin2")


def test_the_server_configuration_names_every_user_and_refuses_anonymous_by_default() -> None:
    config = render_server_auth(lambda u: f"$PW_{u.upper()}", ["edge", "admin"])
    assert 'user: "edge", password: $PW_EDGE' in config
    assert '"rpc.billing.v1.admit"' in config
    assert "no_auth_user" not in config
    assert 'no_auth_user: "admin"' in render_server_auth(
        lambda u: '"x"', ["admin"], anonymous_as="admin"
    )


def test_the_security_page_shows_the_grants_as_they_are() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/security.md").read_text()
    assert markdown_table() in page, "copy markdown_table() into docs/security.md"


def test_every_request_subject_of_the_contract_is_granted_to_its_asker() -> None:
    # A new request subject must be given to the service that sends it, or NATS refuses it.
    from aiapi_shared import admission, edge_api

    modules = (billing_api, batches_api, console_api, payments_api, admission, edge_api)
    constants = {v for m in modules for k, v in vars(m).items() if k.endswith("_SUBJECT")}
    asked = {subject for subjects in REQUESTS.values() for subject in subjects}
    assert constants == asked


def test_each_consumer_owner_sets_aside_under_its_own_durables_only() -> None:
    assert may_publish("billing", "deadletter.billing-settlement")
    assert may_publish("accounts", "deadletter.accounts-key-last-used")
    assert not may_publish("accounts", "deadletter.billing-deposits")
    assert not may_publish("billing", "deadletter.accounts-plan-purchased")
    for service in ("edge", "payments"):
        assert not may_publish(service, "deadletter.billing-settlement")
    for service in SERVICES:  # reading, replaying and deleting dead letters is the operator's
        assert not may_publish(service, "$JS.API.STREAM.MSG.GET.DEADLETTER")
        assert not may_publish(service, "$JS.API.STREAM.MSG.DELETE.DEADLETTER")
