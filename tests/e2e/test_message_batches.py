"""Message Batches across the deployment's processes, each service logged in to NATS as itself:
the edge's batch subjects are granted (the deployment fixture fails on any refused one), the
batch is billed at the batch price, and the auditor finds the books balanced."""

from __future__ import annotations

import contextlib

import pytest

from .support import (
    HAIKU_BASIC_INPUT_NANO,
    HAIKU_BASIC_OUTPUT_NANO,
    Deployment,
    available,
    eventually,
    open_account,
)
from .support import balance as account_balance

pytestmark = pytest.mark.slow


def test_a_batch_is_billed_at_half_price_through_the_deployment(
    deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        start = account_balance(admin, account_id)
        client = closer.enter_context(deployment.sdk(key))
        requests = [
            {
                "custom_id": f"e2e-{i}",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": f"[[reply: batch answer {i}]]"}],
                },
            }
            for i in range(2)
        ]
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert available(admin, account_id) < start  # the worst case is held

        def ended() -> bool:
            return client.messages.batches.retrieve(created.id).processing_status == "ended"

        eventually(ended)
        cost = 0
        for line in client.messages.batches.results(created.id):
            assert line.result.type == "succeeded"
            usage = line.result.message.usage
            # Half of the Basic plan's price: the batch tier's meter.
            cost += (
                usage.input_tokens * HAIKU_BASIC_INPUT_NANO
                + usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
            ) // 2
        assert cost > 0
        eventually(lambda: account_balance(admin, account_id) == start - cost)
        eventually(lambda: available(admin, account_id) == start - cost)
    audit = deployment.audit()
    assert audit.returncode == 0, audit.stdout + audit.stderr
