"""Example values from a JSON Schema, for tool_use inputs the simulator must invent."""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 8


def example_for(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies the simple parts of `schema`.

    `const`, then `default`, then the first `enum` value win; otherwise by type: string
    "example", integer 1, number 1.5, boolean true, null, array of one example item, object with
    an example for each *required* property (in schema order).
    """
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return "example"
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return example_for(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        return {
            name: example_for(properties.get(name), depth + 1)
            for name in required
            if isinstance(name, str)
        }
    if kind == "array":
        return [example_for(schema.get("items"), depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"
