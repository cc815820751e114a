"""How much JetStream keeps, and on how many servers: replicas, byte and age limits per stream.

Pure data from settings; :class:`aiapi_shared.bus.Bus` applies it when it declares streams and
buckets. The rules (docs/operations.md, "JetStream sizing"):

* Every stream and bucket has ``replicas`` copies (``AIAPI_NATS_REPLICAS``: 1 on one server, 3 on
  a cluster, which then survives the loss of one node without losing an acknowledged message).
* Every stream has a byte limit with ``discard: new``: when it is full, a publish is *refused*
  (the publisher's spool or outbox keeps the event and retries) instead of the oldest message
  being dropped, which for usage would be an unbilled request. A stream keeps messages for
  ``max_age`` (its consumers are far ahead of that; the age limit is what frees the bytes), so
  ``max_bytes`` must hold ``max_age`` of peak traffic: bytes per message x messages per second x
  ``max_age`` seconds, with headroom.
* Buckets get a byte limit but no age limit: an expired key record would revoke a customer's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings read their defaults from here
    from aiapi_shared.settings import BaseServiceSettings

GIB = 1 << 30
DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class StreamLimits:
    max_bytes: int
    max_age_s: float


# Used when no settings are given (tests, tools); the services read theirs from settings.
# nats-server reserves each stream's max_bytes (times its replicas) against its file store when
# the stream is created, and refuses a stream that does not fit: the defaults (4.5 GiB in all)
# fit a small server (about 4 GiB in all): USAGE holds a day at 25 requests/s on average, which
# ``aiapi up`` never reaches; docker-compose and Kubernetes set their own from the rule above.
DEFAULT_STREAM_LIMITS: dict[str, StreamLimits] = {
    "USAGE": StreamLimits(max_bytes=2 * GIB, max_age_s=DAY_S),
    "BILLING": StreamLimits(max_bytes=1 * GIB, max_age_s=DAY_S),
    "PAYMENTS": StreamLimits(max_bytes=GIB // 4, max_age_s=90 * DAY_S),
    "ACCOUNTS": StreamLimits(max_bytes=GIB // 4, max_age_s=7 * DAY_S),
}
DEFAULT_KV_MAX_BYTES = GIB // 8
# A stream that is not one of the product's (tests, the dead-letter stream of an operator).
OTHER_STREAM = StreamLimits(max_bytes=GIB // 4, max_age_s=30 * DAY_S)


@dataclass(frozen=True)
class JetStreamLimits:
    replicas: int = 1
    streams: dict[str, StreamLimits] = field(default_factory=lambda: dict(DEFAULT_STREAM_LIMITS))
    kv_max_bytes: int = DEFAULT_KV_MAX_BYTES

    def for_stream(self, name: str) -> StreamLimits:
        return self.streams.get(name, OTHER_STREAM)


def jetstream_limits(settings: BaseServiceSettings) -> JetStreamLimits:
    """The limits a service's settings give (every service of a deployment must agree: the
    same ConfigMap or environment; a service whose settings differ would re-declare them)."""
    return JetStreamLimits(
        replicas=settings.nats_replicas,
        streams={
            "USAGE": StreamLimits(settings.nats_usage_max_bytes, settings.nats_usage_max_age_s),
            "BILLING": StreamLimits(
                settings.nats_billing_max_bytes, settings.nats_billing_max_age_s
            ),
            "PAYMENTS": StreamLimits(
                settings.nats_payments_max_bytes, settings.nats_payments_max_age_s
            ),
            "ACCOUNTS": StreamLimits(
                settings.nats_accounts_max_bytes, settings.nats_accounts_max_age_s
            ),
        },
        kv_max_bytes=settings.nats_kv_max_bytes,
    )


# JetStream bytes per proxied request, by stream: measured 914 (USAGE, one event) and 647
# (BILLING: settlement news) over 200 requests, with about 30% margin for longer model names and
# ids (tests/e2e/test_stream_sizing.py keeps them true; docs/operations.md sizes from them).
BYTES_PER_REQUEST: dict[str, int] = {"USAGE": 1200, "BILLING": 850}
