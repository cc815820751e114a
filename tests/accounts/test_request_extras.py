"""The request log's "tools and options" cell: what a request was billed for beyond tokens."""

from __future__ import annotations

from aiapi_accounts.pages.render import extras
from aiapi_shared.events import Usage


def test_plain_requests_show_nothing() -> None:
    assert extras(Usage(input_tokens=10, output_tokens=5)) == ""
    plain = Usage(service_tier="standard", inference_geo="global", speed="standard")
    assert extras(plain) == ""


def test_server_tools_and_priced_options_are_named_with_their_counts() -> None:
    usage = Usage(
        web_search_requests=3,
        web_fetch_requests=1,
        service_tier="batch",
        inference_geo="us",
        speed="fast",
    )
    assert extras(usage) == "web search 3, web fetch 1, tier batch, region us, speed fast"
