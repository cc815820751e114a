"""Which tools, betas and options need a price (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_edge.priced_options import needed_meters, unpriced
from aiapi_shared.catalogue import default_catalogue

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_client_tools_cost_only_tokens_and_server_tools_need_their_meter() -> None:
    body = {
        "tools": [
            {"name": "get_weather", "input_schema": {}},
            {"type": "custom", "name": "x"},
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            {"type": "web_search_20250305", "name": "web_search"},
            {"type": "web_fetch_20250910", "name": "web_fetch"},
            {"type": "code_execution_20250825", "name": "code_execution"},
        ]
    }
    assert needed_meters(body, []) == [
        "web_search_requests",
        "web_fetch_requests",
        "code_execution",
    ]
    catalogue = default_catalogue()
    assert unpriced(body, [], catalogue, NOW, frozenset()) == "code_execution"
    assert unpriced(body, [], catalogue, NOW, frozenset({"code_execution"})) is None


def test_options_and_betas_name_the_meter_they_need() -> None:
    body = {"service_tier": "auto", "inference_geo": "us", "speed": "fast", "container": "c_1"}
    betas = ["context-1m-2025-08-07", "fast-mode-2026-02-01", "files-api-2025-04-14"]
    assert needed_meters(body, betas) == [
        "code_execution",
        "service_tier:priority",
        "inference_geo:us",
        "speed:fast",
        "long_context",
        "speed:fast",
    ]
    catalogue = default_catalogue()
    allowed = frozenset({"code_execution"})
    assert unpriced(body, betas, catalogue, NOW, allowed) == "service_tier:priority"
    plain = {"service_tier": "standard_only", "inference_geo": "global"}
    assert unpriced(plain, ["context-1m-2025-08-07"], catalogue, NOW, frozenset()) is None
    before = datetime(2025, 1, 1, tzinfo=UTC)  # no meter is in force yet
    assert unpriced(plain, [], catalogue, before, frozenset()) == "inference_geo:global"
