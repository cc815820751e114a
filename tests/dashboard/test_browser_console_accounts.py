"""The operator console in a real browser, on the whole deployment (billing, accounts, edge,
payments watching anvil): an admin finds an account by a deposit's transaction hash and by a
request-id, adjusts its balance with a reason and sees the audit entry; the report shows the
ledger's revenue; the live view shows the traffic; a support operator cannot write. Every page
passes axe-core and is photographed for docs/console.md."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
from aiapi_shared.money import format_usd, parse_usd
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import DESKTOP, PASSWORD, Chain, axe_source, credit, shoot
from tests.e2e.support import Deployment, eventually

ADMIN_OPERATOR = ("Ada Admin", "ada@ops.example", "admin")
SUPPORT_OPERATOR = ("Sam Support", "sam@ops.example", "support")


@contextlib.contextmanager
def console_page(browser: Browser, deployment: Deployment) -> Iterator[Page]:
    """A page in a fresh browser context on the operator listener."""
    context = browser.new_context(base_url=deployment.admin_url, viewport=DESKTOP)
    context.add_init_script(script=axe_source())
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def operator(admin: httpx.Client, name: str, email: str, role: str) -> None:
    made = admin.post(
        "/admin/v1/operators",
        json={"name": name, "email": email, "role": role, "password": PASSWORD},
    )
    assert made.status_code == 201, made.text


def sign_in(page: Page, email: str) -> None:
    page.goto("/admin/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Operator console")).to_be_visible()


def search(page: Page, text: str) -> None:
    page.goto("/admin/accounts")
    page.get_by_label("Email, account id, key, request-id, deposit address or transaction").fill(
        text
    )
    page.get_by_role("button", name="Search").click()


def test_an_operator_finds_inspects_and_credits_an_account(
    browser: Browser, paid_deployment: Deployment, chain: Chain, screenshots: Path
) -> None:
    deployment = paid_deployment
    with deployment.admin() as admin:
        operator(admin, *ADMIN_OPERATOR)
        operator(admin, *SUPPORT_OPERATOR)
        created = admin.post("/admin/v1/accounts", json={"email": "found@customer.example"})
        account_id = created.json()["id"]
        admin.post("/admin/v1/accounts", json={"email": "other@customer.example"})
        key = admin.post(f"/admin/v1/accounts/{account_id}/keys", json={"name": "ci"}).json()
        credit(admin, account_id, "5.00")
        addresses = admin.get(f"/admin/v1/accounts/{account_id}/deposit-addresses").json()
        address = next(a["address"] for a in addresses if a["asset"] == "USDT")
    tx = chain.token.functions.transfer(address, 3_000_000).transact({"from": chain.payer})
    tx_hash = "0x" + bytes(tx).hex().removeprefix("0x")
    chain.w3.eth.wait_for_transaction_receipt(tx)
    with deployment.sdk(key["key"]) as sdk:
        message = sdk.messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "[[reply: found by support]]"}],
        )
    request_id = message._request_id
    assert request_id

    with console_page(browser, deployment) as page:
        sign_in(page, ADMIN_OPERATOR[1])

        # By the deposit's transaction hash (payments saw it in the mempool or a block).
        def found_by_tx() -> bool:
            search(page, tx_hash)
            return page.locator(f"#accounts tr[data-account-id='{account_id}']").count() == 1

        eventually(found_by_tx, timeout_s=30, every_s=0.3)
        expect(page.locator("#accounts tbody")).to_contain_text("tx hash")
        expect(page.locator("#accounts tbody tr")).to_have_count(1)
        shoot(page, screenshots, "console-search")

        # By the request-id the customer quotes (once billing settled it, or while held).
        def found_by_request() -> bool:
            search(page, request_id)
            return page.locator(f"#accounts tr[data-account-id='{account_id}']").count() == 1

        eventually(found_by_request, timeout_s=30, every_s=0.3)
        expect(page.locator("#accounts tbody")).to_contain_text("request id")
        page.get_by_role("link", name="found@customer.example").click()
        expect(page.get_by_role("heading", name="found@customer.example")).to_be_visible()
        eventually(
            lambda: page.reload() or page.locator(f"tr[data-request-id='{request_id}']").count()
        )
        before = parse_usd(page.locator("#balance").inner_text())
        assert before < parse_usd("5.00")  # the request was paid for

        # A bad amount is said so on the page, and moves nothing.
        page.get_by_label("Amount in USD (negative to debit)").fill("2.5e1")
        page.get_by_label("Reason (kept in the ledger and the audit log)").fill("typo")
        page.get_by_role("button", name="Adjust").click()
        expect(page.get_by_role("alert")).to_contain_text("Give an amount in USD")
        expect(page.locator("#balance")).to_have_text(format_usd(before))

        page.get_by_label("Amount in USD (negative to debit)").fill("2.50")
        page.get_by_label("Reason (kept in the ledger and the audit log)").fill(
            "refund: outage on the 3rd"
        )
        page.get_by_role("button", name="Adjust").click()
        expect(page.get_by_role("status")).to_have_text("The balance was adjusted.")
        expect(page.locator("#balance")).to_have_text(format_usd(before + parse_usd("2.50")))
        audit = page.locator("#audit tbody tr").first
        expect(audit).to_contain_text("Ada Admin")
        expect(audit).to_contain_text("refund: outage on the 3rd")
        expect(audit).to_contain_text("amount_usd=2.50")
        expect(page.locator("#ledger-entries")).to_contain_text("refund: outage on the 3rd")
        expect(page.locator("#deposit-list")).to_contain_text(tx_hash)
        shoot(page, screenshots, "console-account")  # key hints only, never a key

        # Reloading the result page does not credit twice (the redirect is a GET) and a form
        # sent twice is the same adjustment (its idempotency key).
        page.reload()
        expect(page.locator("#balance")).to_have_text(format_usd(before + parse_usd("2.50")))

        # The report over today: this request's revenue is what the ledger debited.
        page.goto("/admin/reports?group_by=account")
        row = page.locator(f"#report tr[data-key='{account_id}']")
        expect(row).to_contain_text("found@customer.example")
        with httpx.Client(base_url=deployment.edge_url) as edge:
            record = edge.get(
                f"/v1/usage/requests/{request_id}", headers={"x-api-key": key["key"]}
            ).json()
        expect(row.locator(".revenue")).to_have_text(record["cost_usd"])
        with page.expect_download() as download:
            page.locator("#csv").click()
        table = Path(download.value.path()).read_text("utf-8")
        assert account_id in table and table.splitlines()[0].startswith("account_id,email")
        shoot(page, screenshots, "console-reports")

        page.goto("/admin/live")
        expect(page.locator("#settled")).to_be_visible()
        shoot(page, screenshots, "console-live")

    # Support reads everything and changes nothing.
    with console_page(browser, deployment) as page:
        sign_in(page, SUPPORT_OPERATOR[1])
        page.goto(f"/admin/accounts/{account_id}")
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.get_by_role("button", name="Adjust")).to_have_count(0)
        balance = page.locator("#balance").inner_text()
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        forged = page.request.post(
            f"/admin/accounts/{account_id}/adjust",
            form={"csrf_token": csrf or "", "amount_usd": "100.00", "reason": "support try"},
        )
        assert forged.status == 403
        page.reload()
        expect(page.locator("#balance")).to_have_text(balance)
