"""The edge's settings (``AIAPI_`` environment variables, or secret files).

``AIAPI_UPSTREAM_API_KEYS`` is a comma-separated pool. An entry may carry its own base URL as
``url|key`` (for example ``https://eu.example.com|sk-ant-...``); entries without one use
``AIAPI_UPSTREAM_URL``. An entry may start with an organisation label, ``ORG=`` (letters,
digits, ``.``, ``_``, ``-``): ``acme=sk-ant-...`` or ``acme=https://eu.example.com|sk-ant-...``.
Keys of one organisation share its prompt cache, so a conversation may move between them without
losing it (:mod:`aiapi_edge.affinity`); a key without a label is an organisation of its own. Unset, the edge has no upstream key: ``aiapi up`` then points it at the
built-in simulator with a placeholder key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from aiapi_shared.money import Money, parse_usd
from aiapi_shared.settings import BaseServiceSettings
from aiapi_shared.upstream_seal import fingerprint, hint
from pydantic import Field, SecretStr

from aiapi_edge.worker_plan import worker_dir_name

_ORGANISATION = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})=")


ENV_KEY_PREFIX = "env-"


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """One upstream credential, the base URL it is used against and how the pool uses it.

    ``key_id`` names it in the operator API: an operator's key has the id accounts gave it; a
    key of ``AIAPI_UPSTREAM_API_KEYS`` is ``env-`` and its fingerprint (the same on every edge).
    """

    base_url: str
    api_key: str
    organisation: str = ""  # "" : the key is an organisation of its own
    weight: int = 1  # its share of the traffic, relative to the others
    models: tuple[str, ...] = ()  # empty: every model
    key_id: str = ""
    source: str = "env"  # or "operator"

    def __post_init__(self) -> None:
        if not self.key_id:
            object.__setattr__(self, "key_id", ENV_KEY_PREFIX + fingerprint(self.api_key))

    @property
    def fingerprint(self) -> str:
        """Which key this is, for records kept elsewhere (a Message Batch remembers the key that
        created it): a digest that does not reveal the key."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        """A name for logs and metrics that never reveals the key: its last four characters."""
        return hint(self.api_key)

    def serves(self, model: str | None) -> bool:
        return not self.models or model is None or model in self.models


class EdgeSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "edge"

    upstream_url: str = "https://api.anthropic.com"
    upstream_api_keys: SecretStr = SecretStr("")
    # The private half of the pool's seal (base64; a secret file): opens the upstream keys the
    # operator adds at runtime (docs/security.md, "Upstream keys"). Unset: only the keys of
    # AIAPI_UPSTREAM_API_KEYS serve; the operator may still weight, disable or remove those.
    upstream_seal_private_key: SecretStr | None = None
    # How often this edge reports its upstream keys' health and counters to the operator API.
    edge_upstream_report_s: float = Field(default=2.0, gt=0, le=10)
    edge_port: int = 8080
    internal_port: int = Field(default=9080, ge=0, le=65535)
    # On SIGTERM, how long streams in progress may run on before they are cut (Kubernetes: the
    # pod's terminationGracePeriodSeconds is this plus the preStop delay plus a margin).
    edge_graceful_timeout_s: int = Field(default=10, ge=1)
    # Then, how long the edge waits for its spool to be published before it exits (a pod scaled
    # away should leave no usage on its volume); what remains is published on its next start.
    edge_spool_drain_s: float = Field(default=2.0, ge=0)
    edge_max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # Bounds against slow and oversized requests (docs/edge.md, "Bounds"): the whole body must
    # arrive within the timeout; at most ``edge_body_reads`` bodies longer than one read are
    # gathered at once; a request head must arrive within its timeout and stay within its size.
    edge_body_timeout_s: float = Field(default=60.0, gt=0)
    edge_body_reads: int = Field(default=64, ge=1)
    edge_header_timeout_s: float = Field(default=15.0, gt=0)
    edge_max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    edge_spool_dir: Path | None = None
    # Worker processes sharing the public port (docs/edge.md, "Workers"); 0: one per CPU this
    # process may use (its affinity, within its cgroup's CPU limit), the default: a bare
    # ``python -m aiapi_edge`` uses every core it is given, as `aiapi up`, compose and Kubernetes do.
    edge_workers: int = Field(default=0, ge=0, le=512)
    # Set by the supervisor for each worker it starts, never by hand: the worker's index among
    # how many, the listening sockets it inherits, the pipe it reports "started" on.
    edge_worker_index: int = Field(default=0, ge=0)
    edge_worker_count: int = Field(default=1, ge=1)
    edge_listen_fd: int | None = None
    edge_internal_fd: int | None = None
    edge_started_fd: int | None = None
    edge_supervisor_pid: int | None = None
    edge_spool_max_rows: int = Field(default=1_000_000, gt=0)
    # New requests are refused (503) while the spool's files exceed this or the disk holding them
    # has less than the minimum free: a request is never served without room for its usage event.
    edge_spool_max_bytes: int = Field(default=4 * 1024**3, gt=0)
    edge_spool_min_free_bytes: int = Field(default=256 * 1024**2, ge=0)
    edge_spool_fsync: bool = False
    # The mirrors (key records by digest, balance snapshots, the catalogue) kept beside the spool
    # so that a restart serves while NATS is away (docs/edge.md, "Cold start"): a snapshot is
    # served from for at most this long after it was last known current (a key revoked meanwhile
    # still works until then), never written over this size, rewritten or touched this often.
    edge_mirror_max_age_s: float = Field(default=3600.0, ge=0)
    edge_mirror_max_bytes: int = Field(default=256 * 1024**2, gt=0)
    edge_mirror_save_interval_s: float = Field(default=5.0, gt=0)
    # The spool's checkpoint (two fsyncs) comes this long after the first commit since the last
    # one, or after edge_spool_sync_rows events: the power-cut window of a spool without
    # AIAPI_EDGE_SPOOL_FSYNC (docs/edge.md, "Spool").
    edge_spool_sync_interval_s: float = Field(default=0.5, gt=0, le=5)
    edge_spool_sync_rows: int = Field(default=1024, ge=1)
    # The relay publishes usage events in rounds: after a short round it waits for others to
    # gather, from edge_relay_linger_s up to edge_relay_linger_max_s while rounds stay short
    # (aiapi_shared.linger), none after a full round.
    edge_relay_linger_s: float = Field(default=0.05, ge=0, le=1)
    edge_relay_linger_max_s: float = Field(default=0.25, ge=0, le=2)
    edge_admission_timeout_s: float = Field(default=0.5, gt=0)
    edge_offline_allowance_usd: str = "0.50"
    # Admission leases (docs/edge.md): admit an account's requests against money and rate limits
    # billing granted this replica, with no round trip per request.
    edge_leases: bool = True
    edge_lease_max_usd: str = "20.00"
    edge_lease_max_requests: int = Field(default=1000, ge=1)
    # How long a lease grant, renewal or close (in the background) waits for billing's answer,
    # and a request waits for its account's grant on its way.
    edge_lease_timeout_s: float = Field(default=5.0, gt=0)
    edge_ping_interval_s: float = Field(default=10.0, gt=0)
    edge_disconnect_drain_s: float = Field(default=60.0, ge=0)
    edge_upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    edge_upstream_read_timeout_s: float = Field(default=600.0, gt=0)
    edge_upstream_attempts: int = Field(default=4, ge=1, le=16)
    # The most one request waits, in total, for an overloaded (529) or resting (429) upstream
    # before the client gets the 529 (docs/edge.md); 0: no waiting.
    edge_overload_retry_s: float = Field(default=10.0, ge=0, le=120)
    # anthropic-beta values refused with a 400 (comma list); and, when set, the only ones passed.
    # Route each conversation to the same upstream key while it is healthy (prompt caching,
    # docs/edge.md "Upstream key affinity"); false: round-robin over the healthy keys.
    edge_key_affinity: bool = True
    edge_beta_deny: str = ""
    edge_beta_allow: str = ""
    # Tools, betas' meters and options served although the catalogue has no price for them
    # (comma list of the names the 400 gives, e.g. "code_execution,service_tier:priority").
    edge_unpriced_allow: str = ""
    # count_tokens requests per customer key per minute, on each replica.
    edge_count_tokens_per_minute: int = Field(default=600, ge=1)
    edge_id: str = ""
    # /v1/models lists what is sold; with this, each exact alias is listed as an entry too.
    edge_list_aliases: bool = False
    # Browser clients (docs/edge.md, CORS): "*" (any origin), a comma-separated list of origins,
    # or empty (no CORS headers: browsers are refused).
    cors_origins: str = "*"
    # previous_response_id on /v1/responses: the bytes of finished responses kept in memory on
    # each replica (docs/edge.md); 0: no store, previous_response_id is a 400.
    edge_responses_store_bytes: int = Field(default=0, ge=0)
    # Message Batches (docs/edge.md): how often the tracker asks billing for batches due a look,
    # how long a batch waits between two looks while it processes, and the claim's lease.
    edge_batch_tick_s: float = Field(default=5.0, gt=0)
    edge_batch_poll_s: float = Field(default=60.0, ge=0)
    edge_batch_lease_s: float = Field(default=120.0, gt=0)
    # Requests (or results) per message to billing: a batch's are sent in chunks, well under
    # NATS's 1 MB payload whatever the batch's size.
    edge_batch_chunk: int = Field(default=1000, ge=1, le=2000)

    @property
    def spool_root(self) -> Path:
        """The edge's spool directory: one sub-directory per worker (:mod:`.worker_plan`)."""
        return self.edge_spool_dir or (self.data_dir / "edge-spool")

    @property
    def spool_dir(self) -> Path:
        """This worker's own spool (and mirror snapshot) directory."""
        return self.spool_root / worker_dir_name(self.edge_worker_index)

    @property
    def lease_max_amount(self) -> Money:
        return parse_usd(self.edge_lease_max_usd)

    @property
    def offline_allowance(self) -> Money:
        return parse_usd(self.edge_offline_allowance_usd)

    def upstream_keys(self) -> tuple[UpstreamKey, ...]:
        """The pool, in the configured order (``url|key`` entries carry their own base URL)."""
        keys: list[UpstreamKey] = []
        for raw in self.upstream_api_keys.get_secret_value().split(","):
            entry = raw.strip()
            if not entry:
                continue
            organisation = ""
            label = _ORGANISATION.match(entry)
            if label is not None:
                organisation, entry = label.group(1), entry[label.end() :].strip()
            url, sep, key = entry.rpartition("|")
            base = url.strip() if sep and url.strip() else self.upstream_url
            keys.append(
                UpstreamKey(
                    base_url=base.rstrip("/"), api_key=key.strip(), organisation=organisation
                )
            )
        return tuple(keys)
