"""Writes the event catalogue (JSON Schema of every event, by subject) for the docs.

``python -m aiapi_shared.events.catalogue_schema docs/events.schema.json``
"""

from __future__ import annotations

import argparse
import json
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
    # argparse, so that ``--help`` prints the usage: the bare ``argv[1]`` this took before made
    # ``aiapi events-schema --help`` write the catalogue to a file named ``--help``.
    parser = argparse.ArgumentParser(
        prog="aiapi events-schema",
        description="Write the JSON Schema of every event and KV record, by subject.",
    )
    parser.add_argument("output", nargs="?", type=Path, help="the file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = json.dumps(build_catalogue(), indent=2, sort_keys=True) + "\n"
    if args.output is not None:
        args.output.write_text(text, "utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
