"""CORS on the edge's customer routes: preflights and answer headers over plain HTTP, and a real
browser (Debian's chromium driven by Playwright) calling the gateway from a page on another
origin, as the browser clients (NextChat, TypingMind, LobeChat, Open WebUI) do."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from .conftest import EdgeEnv
from .support import stream_count, usage_events

CHROMIUM = Path(os.environ.get("AIAPI_TEST_CHROMIUM", "/usr/bin/chromium"))
# Root in a container has no user namespaces for chromium's sandbox; nothing may reach the network.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SDK_HEADERS = (
    "authorization, content-type, x-stainless-os, x-stainless-lang, anthropic-version, "
    "anthropic-beta, anthropic-dangerous-direct-browser-access, x-api-key"
)


async def preflight(
    env: EdgeEnv, path: str, origin: str, headers: str = SDK_HEADERS
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=env.url) as client:
        return await client.options(
            path,
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": headers,
            },
        )


async def test_a_preflight_on_every_customer_route_allows_the_sdk_headers(env: EdgeEnv) -> None:
    for path in (
        "/v1/messages",
        "/api/proxy/v1/messages",
        "/api/proxy/v1/messages/count_tokens",
        "/api/proxy/v1/chat/completions",
        "/chat/completions",
        "/api/proxy/v1/responses",
        "/api/proxy/v1/models",
        "/api/proxy/models/claude-haiku-4-5",
        "/api/proxy/v1/usage/requests/req_1",
    ):
        answer = await preflight(env, path, "https://chat.example.org")
        assert answer.status_code == 204, path
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers  # never with "*"
        assert answer.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
        allowed = answer.headers["access-control-allow-headers"].split(", ")
        assert sorted(allowed) == sorted(SDK_HEADERS.split(", "))
        assert int(answer.headers["access-control-max-age"]) > 0
    # Health and metrics are not customer routes: no preflight answer there.
    assert (await preflight(env, "/healthz", "https://chat.example.org")).status_code == 404


async def test_a_header_outside_the_list_is_not_allowed(env: EdgeEnv) -> None:
    answer = await preflight(env, "/v1/messages", "https://a.example", "x-api-key, cookie, x-evil")
    assert answer.headers["access-control-allow-headers"] == "x-api-key"


async def test_answers_carry_the_origin_and_expose_the_request_headers(env: EdgeEnv) -> None:
    async with httpx.AsyncClient(base_url=env.url) as client:
        ok = await client.get(
            "/api/proxy/v1/models",
            headers={"origin": "https://chat.example.org", "authorization": f"Bearer {env.key}"},
        )
        refused = await client.post(
            "/v1/messages", headers={"origin": "https://chat.example.org"}, json={}
        )
        health = await client.get("/healthz", headers={"origin": "https://chat.example.org"})
    for answer in (ok, refused):  # errors too, or the page could not read them
        assert answer.headers["access-control-allow-origin"] == "*"
        exposed = answer.headers["access-control-expose-headers"].split(", ")
        assert exposed == [
            "request-id",
            "x-request-id",
            "retry-after",
            "aiapi-cost-usd",
            "aiapi-balance-usd",
        ]
    assert refused.status_code == 401
    assert "access-control-allow-origin" not in health.headers


LISTED = {"cors_origins": "https://chat.example.org, https://typingmind.example/"}


@pytest.mark.parametrize("edge_settings_override", [LISTED])
async def test_a_list_of_origins_echoes_the_matching_one(env: EdgeEnv) -> None:
    listed = await preflight(env, "/v1/chat/completions", "https://typingmind.example")
    assert listed.headers["access-control-allow-origin"] == "https://typingmind.example"
    assert listed.headers["access-control-allow-credentials"] == "true"
    assert listed.headers["vary"] == "origin"
    other = await preflight(env, "/v1/chat/completions", "https://evil.example")
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-headers" not in other.headers
    assert other.headers["vary"] == "origin"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (a stat, once per test)
        pytest.fail(
            f"the CORS browser test needs chromium at {CHROMIUM} (apt-get install chromium)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A loopback web server for the browser client's page: another origin than the edge's (the
    page must come from a loopback address for chromium to let it call one)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>client</title><p>a browser client"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def open_page(browser: Browser, origin: str) -> Page:
    page = await browser.new_page()
    await page.goto(origin + "/")
    return page


FETCH_CHAT = """async ([base, key]) => {
  const answer = await fetch(base + "/api/proxy/v1/chat/completions", {
    method: "POST",
    headers: {"authorization": "Bearer " + key, "content-type": "application/json",
              "x-stainless-os": "Linux", "x-stainless-lang": "js"},
    body: JSON.stringify({model: "claude-haiku-4-5", stream: true,
                          messages: [{role: "user", content: "Hi [[reply: From a browser.]]"}]}),
  });
  return {status: answer.status, requestId: answer.headers.get("x-request-id"),
          body: await answer.text()};
}"""

FETCH_MESSAGES = """async ([base, key]) => {
  const answer = await fetch(base + "/v1/messages", {
    method: "POST",
    headers: {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json",
              "anthropic-dangerous-direct-browser-access": "true"},
    body: JSON.stringify({model: "claude-haiku-4-5", max_tokens: 20,
                          messages: [{role: "user", content: "[[reply: Anthropic too.]]"}]}),
  });
  return {status: answer.status, requestId: answer.headers.get("request-id"),
          body: await answer.json()};
}"""


async def test_a_browser_page_on_another_origin_streams_from_the_gateway(
    env: EdgeEnv, browser: Browser, page_origin: str
) -> None:
    page = await open_page(browser, page_origin)
    chat = await page.evaluate(FETCH_CHAT, [env.url, env.key])
    assert chat["status"] == 200
    assert chat["requestId"].startswith("req_")  # exposed to the page's script
    frames = [f.removeprefix("data: ") for f in chat["body"].split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "From a browser."
    messages = await page.evaluate(FETCH_MESSAGES, [env.url, env.key])
    assert messages["status"] == 200 and messages["requestId"].startswith("req_")
    assert messages["body"]["content"][0]["text"] == "Anthropic too."
    assert [e.route for e in await usage_events(env.bus, 2)] == ["openai", "anthropic"]


@pytest.mark.parametrize("edge_settings_override", [{"cors_origins": "https://only.example"}])
async def test_a_browser_on_an_origin_not_listed_is_refused(
    env: EdgeEnv, browser: Browser, page_origin: str
) -> None:
    page = await open_page(browser, page_origin)
    outcome = await page.evaluate(
        f"async ([base, key]) => {{ try {{ return (await ({FETCH_CHAT})([base, key])).status; }}"
        " catch (error) { return String(error); } }",
        [env.url, env.key],
    )
    assert outcome == "TypeError: Failed to fetch"
    assert await stream_count(env.bus) == 0  # refused at the preflight: nothing was sent
