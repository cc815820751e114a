"""Who may do what on NATS: one NATS user per service, and the subjects each may publish and
subscribe to. Pure data; the embedded server (``aiapi up``, the test kit), the deployment's NATS
configuration and the tests all derive from here, so there is one list to review.

NATS is the control plane for money and identity: whoever may publish on a subject can credit a
balance (``rpc.billing.v1.adjust``), write a key record (``$KV.aiapi_keys.>``), report a
confirmed deposit (``payments.v1.>``) or answer admissions (subscribing ``rpc.billing.>``). So each
service gets only what its code does, derived from the subjects the contract modules name:

* the edge publishes usage and asks billing for admissions, leases and request records; it reads
  the key, balance, catalogue and upstream-key buckets, writes only its upstream status reports,
  and answers the operator's test of an upstream key (``rpc.edge.>``);
* billing answers ``rpc.billing.>``, publishes ``billing.v1.>``, writes the balance and catalogue
  buckets and consumes usage, deposits and account events with its own durable consumers;
* accounts publishes ``accounts.v1.>``, is the only writer of the key and upstream-key buckets
  (reading the edges' upstream status), asks the edges to test an upstream key, asks billing and
  payments on the operator's and customers' behalf, and consumes usage, plan purchases and (for
  its notices by mail) credited deposits and low balances;
* payments answers ``rpc.payments.>`` and is the only publisher of ``payments.v1.>``.

JetStream is reached through subjects too (``$JS.API.>``), so those are narrowed the same way: a
service may create (idempotently: an existing stream is never changed by a create) every product
stream and bucket it uses, since any of them may start first, but only the owner may update its
stream; consumers are created, read and acknowledged only by the service that owns them; a bucket
(a stream named ``KV_<bucket>``) is written and updated only by its writer. Each service receives replies on an
inbox of its own (:func:`inbox_prefix`), so none can read another's answers. Nothing here grants
deleting or purging a stream: that is the operator's (the ``admin`` user's) alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiapi_shared import batches_api, billing_api, console_api, edge_api, payments_api
from aiapi_shared.admission import (
    ADMIT_SUBJECT,
    EXTEND_SUBJECT,
    LEASE_CLOSE_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
)
from aiapi_shared.events.records_v1 import (
    BALANCES_BUCKET,
    CATALOGUE_BUCKET,
    KEYS_BUCKET,
    UPSTREAM_KEYS_BUCKET,
    UPSTREAM_STATUS_BUCKET,
)

SERVICES: tuple[str, ...] = ("edge", "billing", "accounts", "payments")
ADMIN_USER = "admin"  # full rights: the operator's CLI, migrations of streams, the tests

# Each product stream, its subjects and the one service that publishes to it (and may update it).
# The names and subjects are those of ``aiapi_shared.bus.STREAMS`` (a test keeps them equal).
STREAM_OWNERS: dict[str, tuple[str, str]] = {
    "USAGE": ("usage.v1.>", "edge"),
    "BILLING": ("billing.v1.>", "billing"),
    "PAYMENTS": ("payments.v1.>", "payments"),
    "ACCOUNTS": ("accounts.v1.>", "accounts"),
    # Messages a consumer could not decode: each consumer's owner publishes to its own
    # ``deadletter.<durable>`` (see ``_dead_letters``); only the operator reads, replays, deletes.
    "DEADLETTER": ("deadletter.>", ADMIN_USER),
}

# The durable consumers, by owner: (stream, durable name). Keep in step with the services'
# consumers modules (a test reads them).
DURABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "billing": (
        ("USAGE", "billing-settlement"),
        ("PAYMENTS", "billing-deposits"),
        ("ACCOUNTS", "billing-accounts"),
    ),
    "accounts": (
        ("USAGE", "accounts-key-last-used"),
        ("BILLING", "accounts-plan-purchased"),
        # the notices by mail (started only when SMTP is configured)
        ("BILLING", "accounts-notice-deposit-credited"),
        ("BILLING", "accounts-notice-balance-low"),
    ),
}

# KV buckets: who writes each, who only reads (watches) it.
BUCKET_WRITERS: dict[str, str] = {
    KEYS_BUCKET: "accounts",
    BALANCES_BUCKET: "billing",
    CATALOGUE_BUCKET: "billing",
    UPSTREAM_KEYS_BUCKET: "accounts",
    UPSTREAM_STATUS_BUCKET: "edge",
}
BUCKET_READERS: dict[str, tuple[str, ...]] = {
    KEYS_BUCKET: ("edge",),
    BALANCES_BUCKET: ("edge",),
    CATALOGUE_BUCKET: ("edge", "accounts"),  # accounts: the plans customers may choose
    UPSTREAM_KEYS_BUCKET: ("edge",),
    UPSTREAM_STATUS_BUCKET: ("accounts",),
}

# Requests each service makes (core NATS request/reply), by subject.
EDGE_REQUESTS: tuple[str, ...] = (
    ADMIT_SUBJECT,
    EXTEND_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
    LEASE_CLOSE_SUBJECT,
    billing_api.REQUEST_RECORD_SUBJECT,
    *batches_api.BATCH_SUBJECTS,
)
ACCOUNTS_REQUESTS: tuple[str, ...] = (
    billing_api.ACCOUNT_SUBJECT,
    billing_api.ADJUST_SUBJECT,
    billing_api.PURCHASE_PLAN_SUBJECT,
    billing_api.LEDGER_SUBJECT,
    billing_api.DAILY_USAGE_SUBJECT,
    billing_api.REQUEST_RECORD_SUBJECT,  # the dashboard's lookup by request-id
    billing_api.REQUEST_LIST_SUBJECT,
    billing_api.DAILY_KEY_USAGE_SUBJECT,
    billing_api.USAGE_SERIES_SUBJECT,  # the dashboard's charts
    billing_api.CATALOGUE_GET_SUBJECT,
    billing_api.CATALOGUE_MODEL_SUBJECT,
    billing_api.CATALOGUE_ALIAS_SUBJECT,
    billing_api.CATALOGUE_PRICE_SUBJECT,
    billing_api.CATALOGUE_PLAN_SUBJECT,
    billing_api.CATALOGUE_METER_SUBJECT,
    billing_api.ACCOUNT_TERMS_SUBJECT,
    payments_api.ADDRESSES_SUBJECT,
    payments_api.DEPOSITS_SUBJECT,
    payments_api.SET_RATE_SUBJECT,
    payments_api.SWEEP_PLAN_SUBJECT,
    edge_api.UPSTREAM_TEST_SUBJECT,
    # the operator console
    console_api.ACCOUNT_LIST_SUBJECT,
    console_api.REQUEST_OWNER_SUBJECT,
    console_api.USAGE_REPORT_SUBJECT,
    console_api.LIVE_SUBJECT,
    console_api.DEPOSIT_OWNERS_SUBJECT,
)
# Services answering requests, on these subjects (queue groups).
ANSWERS: dict[str, str] = {
    "billing": "rpc.billing.>",
    "payments": "rpc.payments.>",
    "edge": "rpc.edge.>",  # the operator's test of one upstream key
}
REQUESTS: dict[str, tuple[str, ...]] = {"edge": EDGE_REQUESTS, "accounts": ACCOUNTS_REQUESTS}

_API = "$JS.API"


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may do. ``allow_responses``: it answers requests, so it may publish
    one reply to each request's reply subject (and nothing else under ``_INBOX``)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False


def inbox_prefix(service: str) -> str:
    """The inbox under which ``service`` receives replies (requests, JetStream API, deliveries)."""
    return f"_INBOX.{service}"


def _streams(service: str) -> list[str]:
    subjects: list[str] = []
    for stream, (stream_subjects, owner) in STREAM_OWNERS.items():
        subjects.append(f"{_API}.STREAM.CREATE.{stream}")
        if owner == service:
            subjects += [stream_subjects, f"{_API}.STREAM.UPDATE.{stream}"]
    return subjects


def _durable(stream: str, name: str) -> list[str]:
    return [
        f"{_API}.CONSUMER.INFO.{stream}.{name}",
        f"{_API}.CONSUMER.CREATE.{stream}.{name}",
        f"{_API}.CONSUMER.CREATE.{stream}.{name}.>",  # the form with a filter subject
        f"{_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",  # servers before 2.9
        f"{_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _dead_letters(service: str) -> list[str]:
    """A consumer's owner sets its undecodable messages aside under its durables' names only."""
    return [f"deadletter.{name}" for _, name in DURABLES.get(service, ())]


def _bucket_reader(bucket: str) -> list[str]:
    stream = f"KV_{bucket}"
    return [
        f"{_API}.STREAM.INFO.{stream}",
        # A watch creates the bucket when it is not there yet (the reader may start first),
        # with the product's configuration; a create never changes an existing stream.
        f"{_API}.STREAM.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}",  # watches: ephemeral ordered consumers
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.INFO.{stream}.*",  # a watch checks on its consumer
        f"$JS.FC.{stream}.>",  # flow control replies of those consumers
    ]


def _bucket_writer(bucket: str) -> list[str]:
    stream = f"KV_{bucket}"
    return [
        *_bucket_reader(bucket),
        f"{_API}.STREAM.UPDATE.{stream}",
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        f"$KV.{bucket}.>",
    ]


def permissions_for(service: str) -> Permissions:
    """The least privilege ``service`` runs with; an unknown name is an error, never "all"."""
    if service not in SERVICES:
        raise ValueError(f"no NATS permissions are defined for {service!r}")
    publish = _streams(service)
    for stream, name in DURABLES.get(service, ()):
        publish += _durable(stream, name)
    publish += _dead_letters(service)
    for bucket, writer in BUCKET_WRITERS.items():
        if writer == service:
            publish += _bucket_writer(bucket)
        elif service in BUCKET_READERS.get(bucket, ()):
            publish += _bucket_reader(bucket)
    publish += REQUESTS.get(service, ())
    subscribe = [f"{inbox_prefix(service)}.>"]
    if service in ANSWERS:
        subscribe.append(ANSWERS[service])
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=tuple(subscribe),
        allow_responses=service in ANSWERS,
    )


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in ("*", have[index]):
            return False
    return len(want) == len(have)


def may_publish(service: str, subject: str) -> bool:
    return any(subject_matches(p, subject) for p in permissions_for(service).publish)


def may_subscribe(service: str, subject: str) -> bool:
    return any(subject_matches(p, subject) for p in permissions_for(service).subscribe)


def render_server_auth(
    password_of: Callable[[str], str], users: Iterable[str], *, anonymous_as: str | None = None
) -> str:
    """The authentication part of a nats-server configuration: an ``authorization`` block for
    ``users`` (service names and/or :data:`ADMIN_USER`), each service with its permissions.
    ``password_of(user)`` gives the configuration value of the password, verbatim: a quoted
    literal (:func:`quoted`) or a variable (``$NAME``, which nats-server takes from its
    environment). With no ``anonymous_as`` a client without credentials is refused; with it, such
    a client acts as that user (the test kit's default server, for tests of the bus alone)."""
    entries = []
    for user in users:
        lines = [f"    {{ user: {quoted(user)}, password: {password_of(user)}"]
        if user != ADMIN_USER:
            grant = permissions_for(user)
            lines.append("      permissions: {")
            lines.append(f"        publish: {{ allow: {_list(grant.publish)} }}")
            lines.append(f"        subscribe: {{ allow: {_list(grant.subscribe)} }}")
            if grant.allow_responses:
                lines.append("        allow_responses: true")
            lines.append("      }")
        lines.append("    }")
        entries.append("\n".join(lines))
    text = "authorization {\n  users: [\n" + "\n".join(entries) + "\n  ]\n}\n"
    if anonymous_as is not None:
        text += f"no_auth_user: {quoted(anonymous_as)}\n"
    return text


def password_variable(user: str) -> str:
    """The environment variable a deployment's nats-server takes ``user``'s password from."""
    return f"NATS_{user.upper()}_PASSWORD"


def deployment_server_auth() -> str:
    """The configuration deploy/nats/auth.conf and the Kubernetes ConfigMap hold (tests keep them
    equal): every user, passwords from the server's environment, no anonymous access."""
    header = (
        "# Generated from aiapi_shared.nats_permissions (deployment_server_auth); do not edit.\n"
        "# Passwords come from the environment: "
        + ", ".join(password_variable(u) for u in (*SERVICES, ADMIN_USER))
        + ".\n"
    )
    return header + render_server_auth(
        lambda user: f"${password_variable(user)}", (*SERVICES, ADMIN_USER)
    )


def quoted(value: str) -> str:
    """A string literal of the nats-server configuration language (JSON's quoting is accepted)."""
    return json.dumps(value)


def _list(subjects: Iterable[str]) -> str:
    inner = ",\n          ".join(quoted(s) for s in subjects)
    return f"[\n          {inner}\n        ]"


def markdown_table() -> str:
    """The grants as a Markdown table (docs/security.md holds it; a test keeps it current)."""
    rows = ["| user | may publish | may subscribe | answers requests |", "|---|---|---|---|"]
    for service in SERVICES:
        grant = permissions_for(service)
        rows.append(
            f"| `{service}` | {_cell(grant.publish)} | {_cell(grant.subscribe)} | "
            f"{'yes' if grant.allow_responses else 'no'} |"
        )
    rows.append(f"| `{ADMIN_USER}` | everything | everything | yes |")
    return "\n".join(rows) + "\n"


def _cell(subjects: Iterable[str]) -> str:
    return "<br>".join(f"`{s}`" for s in subjects)
