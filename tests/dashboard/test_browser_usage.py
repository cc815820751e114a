"""The usage page and the request log against the real processes: requests made with the official
SDK appear with their exact cost, in the charts, by request-id, in the API's pages and in a CSV
that equals them; another customer finds none of them."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import httpx
import pytest
from aiapi_shared.money import format_usd, parse_usd
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import credit, my_account_id, opened_page, shoot, sign_up_and_in
from tests.e2e.conftest import closer
from tests.e2e.support import Deployment, eventually

__all__ = ["closer"]

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(shared_deployment: Deployment) -> Deployment:
    """Each test here signs up a customer of its own and looks at that customer's pages and
    requests only: the module's tests share one deployment."""
    return shared_deployment


def create_key(page: Page, name: str) -> str:
    page.goto("/keys")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    key: str = page.locator("#new-key-value").inner_text()
    return key


def test_requests_appear_with_their_exact_cost_in_the_log_charts_api_and_csv(
    page: Page, browser: Browser, deployment: Deployment, screenshots: Path,
    closer: contextlib.ExitStack,
) -> None:  # fmt: skip
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    sign_up_and_in(page, "usage@example.com")
    with deployment.admin() as admin:
        credit(admin, my_account_id(page), "5.00")
    laptop = closer.enter_context(deployment.sdk(create_key(page, "laptop")))
    server = closer.enter_context(deployment.sdk(create_key(page, "server")))
    made: dict[str, int] = {}  # request-id -> cost in nano-USD, as the edge reports it
    for client, model in ((laptop, "claude-haiku-4-5"), (server, "claude-haiku-4-5"),
                          (server, "claude-sonnet-4-6")):  # fmt: skip
        message = client.messages.create(
            model=model, max_tokens=20, messages=[{"role": "user", "content": "[[reply: hi]]"}]
        )
        request_id = message._request_id
        assert request_id
        record = eventually(lambda rid=request_id, c=client: _record(deployment, c, rid))
        made[request_id] = parse_usd(record["cost_usd"])

    page.goto("/usage")
    expect(page.locator("#requests tbody tr[data-request-id]")).to_have_count(3)
    for request_id, cost in made.items():
        row = page.locator(f"tr[data-request-id='{request_id}']")
        assert parse_usd(row.locator(".cost").inner_text()) == cost
    expect(page.locator("#requests tr", has_text="laptop")).to_have_count(1)
    # Chart.js draws the day's cost and tokens by model and by key; the figures table beside
    # each chart gives the day's values exactly.
    charts = page.evaluate(_CHARTS)
    assert set(charts) == {"cost-by-model", "tokens-by-model", "cost-by-key", "tokens-by-key"}
    assert charts["cost-by-model"]["series"] == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert charts["cost-by-key"]["series"] == ["laptop", "server"]
    today = page.locator("#cost-by-model-table tbody tr").last
    assert parse_usd(today.locator("td").last.text_content() or "") == sum(made.values())
    assert charts["cost-by-model"]["last_day_total"] == pytest.approx(sum(made.values()) / 1e9)
    by_key = page.locator("#cost-by-key-table tbody tr").last.locator("td").all_text_contents()
    laptop_cost = made[next(iter(made))]  # the first request; the server key made the others
    assert [parse_usd(v) for v in by_key[:2]] == [laptop_cost, sum(made.values()) - laptop_cost]
    # Dark mode: the axes take the stylesheet's dark colours when the system scheme changes.
    for scheme, muted in (("dark", "#a9a9b4"), ("light", "#55555f")):  # app.css's --muted
        page.emulate_media(color_scheme=scheme)
        page.wait_for_function(f"() => ({_TICK_COLOUR})() === '{muted}'", timeout=5_000)
    assert not [m for m in console if "Content Security Policy" in m], console
    shoot(page, screenshots, "usage")

    # Any request-id finds its record.
    some_id, some_cost = next(iter(made.items()))
    page.get_by_label("request-id").fill(some_id)
    page.get_by_role("button", name="Find").click()
    assert parse_usd(page.locator("#found .cost").inner_text()) == some_cost

    # The API's pages, walked by cursor, equal the CSV export of the same filters.
    listed: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        answer = page.request.get("/api/v1/account/requests", params=params)
        assert answer.ok, answer.text()
        body = answer.json()
        listed += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    page.goto("/usage")
    assert [r["request_id"] for r in listed] == [
        r.get_attribute("data-request-id")
        for r in page.locator("#requests tbody tr[data-request-id]").all()
    ]
    exported = page.request.get("/api/v1/account/requests", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert [(r["request_id"], r["cost_usd"], r["model"], r["key_id"]) for r in rows] == [
        (r["request_id"], r["cost_usd"], r["model"], r["key_id"]) for r in listed
    ]
    assert {r["request_id"]: parse_usd(r["cost_usd"]) for r in rows} == made
    sonnet = page.request.get("/api/v1/account/requests", params={"model": "claude-sonnet-4-6"})
    assert [r["model"] for r in sonnet.json()["data"]] == ["claude-sonnet-4-6"]

    # Another customer sees none of it, by list, by id or on the page.
    with opened_page(browser, deployment) as other:
        sign_up_and_in(other, "nosy@example.com")
        assert other.request.get("/api/v1/account/requests").json()["data"] == []
        assert other.request.get(f"/api/v1/account/requests/{some_id}").status == 404
        assert other.request.get("/api/v1/account/usage/by-key").json()["rows"] == []
        other.goto(f"/usage?request_id={some_id}")
        expect(other.get_by_role("alert")).to_contain_text("No request with this id")
        assert some_id not in other.locator("#requests").inner_text()


_CHARTS = """() => Object.fromEntries([...document.querySelectorAll("canvas[data-chart]")].map(c => {
  const chart = Chart.getChart(c);
  const sets = chart.data.datasets;
  const last = chart.data.labels.length - 1;
  return [c.id, {series: sets.map(d => d.label),
                 last_day_total: sets.reduce((sum, d) => sum + d.data[last], 0)}];
}))"""
_TICK_COLOUR = "() => Chart.getChart('cost-by-model').options.scales.x.ticks.color"


def test_without_javascript_the_charts_are_their_tables(
    browser: Browser, deployment: Deployment
) -> None:
    with opened_page(browser, deployment, java_script_enabled=False) as page:
        sign_up_and_in(page, "nojs-usage@example.com")
        with deployment.admin() as admin:
            credit(admin, my_account_id(page), "5.00")
        page.goto("/keys")
        page.get_by_label("Name").fill("k")
        page.get_by_role("button", name="Create key").click()
        key = page.locator("#new-key-value").inner_text()
        with deployment.sdk(key) as client:
            message = client.messages.create(
                model="claude-haiku-4-5", max_tokens=20,
                messages=[{"role": "user", "content": "[[reply: hi]]"}],
            )  # fmt: skip
        assert message._request_id
        record = eventually(lambda: _record(deployment, client, message._request_id or ""))
        page.goto("/usage")
        expect(page.locator(".chart-box").first).to_be_hidden()
        today = page.locator("#cost-by-model-table tbody tr").last
        expect(today.locator("td").last).to_have_text(format_usd(parse_usd(record["cost_usd"])))


def _record(deployment: Deployment, client: object, request_id: str) -> dict[str, str] | None:
    key = getattr(client, "api_key", "")
    answer = httpx.get(
        f"{deployment.edge_url}/v1/usage/requests/{request_id}",
        headers={"x-api-key": key},
        timeout=10,
    )
    if answer.status_code != 200:
        return None
    found: dict[str, str] = answer.json()
    return found
