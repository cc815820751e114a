"""Which upstream key a conversation prefers, so its prompt cache survives the pool (pure).

Anthropic's prompt cache belongs to an organisation: round-robin over keys of different
organisations makes each turn write the cache again (1.25x the input price) where it would have
read it (0.1x). So a request is routed by its conversation while the key is healthy:

- the conversation is Claude Code's ``x-claude-code-session-id`` header (sent by Claude Code since
  v2.1.86, one UUID per session), else the body's ``metadata.user_id``, else the customer's key;
  scoped by account, so two customers' ids never collide;
- the keys are ranked by weighted rendezvous (highest random weight) hashing, first of the
  organisation (every key of one organisation serves the same cache), then of the key within it.
  A key or an organisation leaving the pool moves only the conversations it served; every edge
  replica ranks alike, since the hash is keyed by nothing but the conversation and the key.
  Weights (the operator's, default 1) scale each member's score as ``-w / ln(u)`` for its
  uniform hash ``u``, which gives each member a share of conversations proportional to ``w``
  (Schindelhauer and Schomaker's weighted rendezvous); an organisation weighs what its heaviest
  key weighs. With every weight 1 the order is that of the plain hash.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from aiapi_edge.peek import parsed_when
from aiapi_edge.settings import UpstreamKey

SESSION_HEADER = b"x-claude-code-session-id"
_ID_LIMIT = 256  # a longer id is cut: it still identifies the conversation


_SPAN = float(2**64)


def _score(conversation: str, member: str, weight: int) -> float:
    digest = hashlib.blake2b(f"{conversation}\x00{member}".encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / _SPAN  # in (0, 1), never 0 or 1
    return -weight / math.log(uniform)


@lru_cache(maxsize=1024)  # the pool's keys: a digest per key, not per request
def _key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def organisation_of(key: UpstreamKey) -> str:
    """The cache a key serves: its organisation label, else the key itself (by a digest)."""
    if key.organisation:
        return "org:" + key.organisation
    return "key:" + _key_digest(key.api_key)


def _member(key: UpstreamKey) -> str:
    """The key's identity in the ranking: the key alone (its base URL may differ per replica)."""
    return _key_digest(key.api_key)


def ranking(conversation: str, keys: Sequence[UpstreamKey]) -> list[int]:
    """The indices of ``keys`` in the order this conversation prefers them."""
    if len(keys) < 2:  # nothing to rank (one key: every request): no hashing
        return list(range(len(keys)))
    organisations = [organisation_of(key) for key in keys]
    heaviest: dict[str, int] = {}
    for key, organisation in zip(keys, organisations, strict=True):
        heaviest[organisation] = max(heaviest.get(organisation, 0), key.weight)
    return sorted(
        range(len(keys)),
        key=lambda i: (
            _score(conversation, organisations[i], heaviest[organisations[i]]),
            _score(conversation, _member(keys[i]), keys[i].weight),
        ),
        reverse=True,
    )


def metadata_of(raw: bytes, parsed: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
    """The body, parsed only when it may name a ``metadata.user_id``; ``parsed``: already
    parsed."""
    return parsed_when(raw, (b'"metadata"',), parsed)


def conversation_of(
    headers: Iterable[tuple[bytes, bytes]],
    body: Mapping[str, Any] | None,
    account_id: str,
    key_id: str,
) -> str:
    """The conversation a request belongs to, for routing (see the module's rules)."""
    for name, value in headers:
        if name.lower() == SESSION_HEADER and value.strip():
            return f"{account_id}|session|{value.strip()[:_ID_LIMIT].decode('latin-1')}"
    metadata = body.get("metadata") if body is not None else None
    user = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    if isinstance(user, str) and user:
        return f"{account_id}|user|{user[:_ID_LIMIT]}"
    return f"{account_id}|key|{key_id}"
