"""Admission leases across the real processes: requests the edge admitted with no round trip are
billed exactly once at their price, a small balance is never overdrawn by many concurrent
streams, and every lease is handed back (available equals balance again, the auditor agrees)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path

import anthropic
import httpx
import pytest
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import internal_env

from .support import (
    HAIKU_BASIC_INPUT_NANO,
    HAIKU_BASIC_OUTPUT_NANO,
    Deployment,
    available,
    balance,
    eventually,
    open_account,
)

pytestmark = pytest.mark.slow


def lease_admissions(deployment: Deployment) -> float:
    """How many requests the edge admitted under a lease (its Prometheus counter)."""
    text = httpx.get(deployment.probe_url("edge", "/metrics"), timeout=10).text
    found = re.search(r'^aiapi_edge_admissions_total\{decision="lease"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def assert_books_balance(deployment: Deployment) -> None:
    """Billing's auditor finds the books exact (the last usage may still be settling)."""

    findings: list[str] = []

    def clean() -> bool:
        audit = deployment.audit()
        findings[:] = [audit.stdout + audit.stderr]
        return audit.returncode == 0

    try:
        eventually(clean, timeout_s=20, every_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"the books do not balance: {findings}") from exc


def test_requests_admitted_under_a_lease_are_billed_exactly_and_the_lease_comes_back(
    deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        start = balance(admin, account_id)
        client = closer.enter_context(deployment.sdk(key))
        cost = 0
        for n in range(30):
            message = client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                messages=[{"role": "user", "content": f"[[reply: answer number {n}]]"}],
            )
            cost += (
                message.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
                + message.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
            )
        assert lease_admissions(deployment) >= 10  # most went without a round trip
        eventually(lambda: balance(admin, account_id) == start - cost)
        # The window ends, the edge closes its lease, billing releases what it still held.
        eventually(lambda: available(admin, account_id) == balance(admin, account_id))
    assert_books_balance(deployment)


def test_concurrent_streams_on_five_cents_never_overdraw_with_leases(
    deployment: Deployment,
) -> None:
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "0.05")
        start = balance(admin, account_id)

        async def storm() -> tuple[int, int, int]:
            """200 streams at once; each answered stream's exact price, summed."""
            client = anthropic.AsyncAnthropic(
                base_url=f"{deployment.edge_url}/api/proxy", api_key=key, max_retries=0
            )

            refusals: list[int] = []

            async def one() -> tuple[int, int]:
                try:
                    async with client.messages.stream(
                        model="claude-haiku-4-5",
                        # 200 tokens cost about 0.0003 USD: five cents cannot buy all 200
                        # answers. max_tokens leaves room for the edge's output estimate, so
                        # no stream outgrows its hold and every answer is priced as reported.
                        max_tokens=2000,
                        messages=[{"role": "user", "content": "[[tokens: 200]]"}],
                    ) as stream:
                        final = await stream.get_final_message()
                except anthropic.APIStatusError as exc:
                    refusals.append(exc.status_code)
                    return 0, 0
                return (
                    final.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
                    + final.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
                ), 1

            try:
                results = await asyncio.gather(*(one() for _ in range(200)))
            finally:
                await client.close()
            # Refused before anything went upstream: no balance, or the plan's rate.
            assert set(refusals) <= {402, 429}, refusals
            return sum(c for c, _ in results), sum(n for _, n in results), len(results)

        spent, answered, sent = asyncio.run(storm())
        assert sent == 200
        assert 0 < answered < 200
        eventually(lambda: balance(admin, account_id) == start - spent, timeout_s=30)
        assert balance(admin, account_id) >= 0
        eventually(lambda: available(admin, account_id) == balance(admin, account_id))
    assert_books_balance(deployment)


def test_two_edge_processes_share_one_accounts_requests_per_minute(
    deployment: Deployment, spawn: SpawnFn, tmp_path: Path
) -> None:
    port = free_port()
    second_env, ready = internal_env(
        {
            **deployment.env_of("edge"),
            "AIAPI_EDGE_PORT": str(port),
            "AIAPI_DATA_DIR": str(tmp_path / "second-edge"),
        }
    )
    spawn(
        [sys.executable, "-m", "aiapi_edge"],
        env=second_env,
        health_url=ready,
        name="edge-2",
        timeout_s=60,
    )
    edges = [deployment.edge_url, f"http://127.0.0.1:{port}"]
    with deployment.admin() as admin:
        _, _, key = open_account(admin, "10.00")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }

    async def burst() -> tuple[list[httpx.Response], float]:
        async with httpx.AsyncClient(timeout=30) as http:
            for url in edges:  # both edges know the key before the clock starts
                warm = await http.post(
                    f"{url}/v1/messages/count_tokens", headers=headers, json=body
                )
                assert warm.status_code == 200
            started = time.monotonic()
            answers = await asyncio.gather(
                *(
                    http.post(f"{edges[i % 2]}/v1/messages", headers=headers, json=body)
                    for i in range(260)
                )
            )
            return list(answers), time.monotonic() - started

    answers, elapsed = asyncio.run(burst())
    statuses = [a.status_code for a in answers]
    # Basic allows 200 requests per minute across every edge together; the allowance refills
    # smoothly, one more request per 0.3 s of the burst.
    refilled = int(elapsed / 0.3) + 1
    assert 200 <= statuses.count(200) <= 200 + refilled < 260
    assert statuses.count(200) + statuses.count(429) == 260
    for answer in answers:
        if answer.status_code == 429:
            assert 1 <= int(answer.headers["retry-after"]) <= 60
            assert answer.json()["error"]["type"] == "rate_limit_error"
    assert_books_balance(deployment)
