"""The edge's mirrors as one document on disk, and when a restored one may be used (pure).

The document holds, per KV bucket the edge mirrors (key records by key digest, balance
snapshots by account, the catalogue snapshot), the values exactly as KV holds them: never a
customer's key, only what the key mirror holds (``docs/edge.md``, "Cold start"). Its age is
not in the document: the file's modification time says when its content was last known current
(:mod:`.mirror_store` rewrites or touches it only while the mirrors are live).
"""

from __future__ import annotations

import orjson

FORMAT = 1

Buckets = dict[str, dict[str, bytes]]  # bucket -> key -> value as KV holds it


class UnreadableSnapshot(ValueError):
    """The file is not a mirror snapshot this edge can read (another format, truncated)."""


def encode(buckets: Buckets) -> bytes:
    document = {
        "format": FORMAT,
        "buckets": {
            bucket: {key: value.decode() for key, value in values.items()}
            for bucket, values in buckets.items()
        },
    }
    return orjson.dumps(document)


def decode(raw: bytes) -> Buckets:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UnreadableSnapshot("not JSON") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UnreadableSnapshot("another format")
    buckets = document.get("buckets")
    if not isinstance(buckets, dict):
        raise UnreadableSnapshot("no buckets")
    decoded: Buckets = {}
    for bucket, values in buckets.items():
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise UnreadableSnapshot(f"bucket {bucket} unreadable")
        decoded[bucket] = {key: value.encode() for key, value in values.items()}
    return decoded
