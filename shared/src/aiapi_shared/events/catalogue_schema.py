"""Writes the event catalogue (JSON Schema of every event, by subject) for the docs.

``python -m aiapi_shared.events.catalogue_schema docs/events.schema.json``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aiapi_shared.events import ALL_EVENTS
from aiapi_shared.events.records_v1 import BalanceSnapshot, CatalogueSnapshot, KeyRecord


def build_catalogue() -> dict[str, Any]:
    events = {}
    for cls in ALL_EVENTS:
        schema = cls.model_json_schema(mode="serialization")
        schema["x-subject"] = cls.subject
        events[cls.subject] = schema
    records = {
        "aiapi_keys": KeyRecord.model_json_schema(mode="serialization"),
        "aiapi_balances": BalanceSnapshot.model_json_schema(mode="serialization"),
        "aiapi_catalogue": CatalogueSnapshot.model_json_schema(mode="serialization"),
    }
    return {"events": events, "kv_records": records}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(build_catalogue(), indent=2, sort_keys=True) + "\n"
    if args:
        Path(args[0]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
