"""End to end: a USDT transfer on anvil raises the balance billing reports, exactly once.

Both services run as processes (`python -m aiapi_payments`, `python -m aiapi_billing`) on one
PostgreSQL (each in its own schema) and one NATS; the test talks to them as accounts does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from aiapi_cli.ports import free_port
from aiapi_shared.billing_api import ACCOUNT_SUBJECT, AccountBalanceReply
from aiapi_shared.billing_api import AccountQuery as BalanceQuery
from aiapi_shared.bus import Bus
from aiapi_shared.payments_api import (
    ADDRESSES_SUBJECT,
    DEPOSITS_SUBJECT,
    AccountQuery,
    AddressesReply,
    DepositsReply,
)
from aiapi_testkit.process import ServiceProcess

from tests.payments.anvil import FINALITY_LAG
from tests.payments.chain import Chain
from tests.payments.service import anvil_env, ask, start

Spawn = Callable[..., ServiceProcess]
CONFIRMED = "payments.v1.deposit.confirmed"


async def balance(bus: Bus, account_id: str) -> int:
    reply = await ask(
        bus, ACCOUNT_SUBJECT, BalanceQuery(account_id=account_id), AccountBalanceReply
    )
    return reply.balance


async def eventually_equal(
    read: Callable[[], Any], expected: object, timeout_s: float = 30
) -> None:
    value = None
    for _ in range(int(timeout_s / 0.1)):
        value = await read()
        if value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {value!r}, expected {expected!r}")


async def deposits_drained(bus: Bus) -> bool:
    info = await bus.js.consumer_info("PAYMENTS", "billing-deposits")
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_a_usdt_transfer_raises_the_billing_balance_exactly_once(
    spawn: Spawn, chain: Chain, database_url: str, nats_url: str, bus: Bus
) -> None:
    billing_port = free_port()
    spawn(
        [sys.executable, "-m", "aiapi_billing"],
        env={
            "AIAPI_DATABASE_URL": database_url,
            "AIAPI_NATS_URL": nats_url,
            "AIAPI_INTERNAL_PORT": str(billing_port),
        },
        health_url=f"http://127.0.0.1:{billing_port}/readyz",
        name="billing",
    )
    token = await chain.deploy_token()
    env = await anvil_env(database_url, nats_url, chain, AIAPI_USDT_CONTRACT=token.address)
    payments = start(spawn, env)
    account = AccountQuery(account_id="acc_e2e")
    addresses = await ask(bus, ADDRESSES_SUBJECT, account, AddressesReply)
    usdt = next(a.address for a in addresses.addresses if a.asset == "USDT")
    assert await balance(bus, "acc_e2e") == 0

    tx = await token.functions.transfer(usdt, 25_500_000).transact({"from": chain.accounts[0]})
    await chain.w3.eth.wait_for_transaction_receipt(tx)
    await chain.mine(FINALITY_LAG)
    await eventually_equal(lambda: balance(bus, "acc_e2e"), 25_500_000_000)

    async def states() -> list[str]:
        return [
            d.state for d in (await ask(bus, DEPOSITS_SUBJECT, account, DepositsReply)).deposits
        ]

    await eventually_equal(states, ["credited"])
    # The credit event arrives again: from a restarted payments (nothing pending: nothing sent),
    # and as a copy beyond JetStream's duplicate filter (another message id): billing's key
    # per deposit id keeps the balance where it is.
    payments.kill()
    payments.start()
    await chain.mine(3)
    last = await bus.js.get_last_msg("PAYMENTS", CONFIRMED)
    await bus.publish(CONFIRMED, last.data or b"", msg_id="a-copy-after-the-window")
    await eventually_equal(lambda: deposits_drained(bus), True)
    assert await balance(bus, "acc_e2e") == 25_500_000_000
