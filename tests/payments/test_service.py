"""`python -m aiapi_payments` as a process: refusals at start, the empty service, and a crash
between crediting and publishing that the outbox survives (the event is published once)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiapi_cli.embedded import EmbeddedNats
from aiapi_payments.addresses import tron_from_hex
from aiapi_shared.bus import Bus
from aiapi_shared.payments_api import (
    ADDRESSES_SUBJECT,
    DEPOSITS_SUBJECT,
    SWEEP_PLAN_SUBJECT,
    AccountQuery,
    AddressesReply,
    DepositsReply,
    SweepPlanQuery,
    SweepPlanReply,
)
from aiapi_testkit.process import ServiceProcess

from tests.payments.anvil import FINALITY_LAG
from tests.payments.chain import Chain
from tests.payments.service import (
    ARGV,
    ask,
    health_url,
    payments_env,
    query,
    start,
    stream_count,
    wait_for_row,
)
from tests.payments.test_keys import ABANDON
from tests.payments.wallets import (
    ETH_ADDRESS_0,
    ETH_XPRV,
    ETH_XPUB,
    TRON_ADDRESS_0,
    TRON_XPUB,
    eth_deposit_address,
    tron_deposit_address,
)

Spawn = Callable[..., ServiceProcess]
CONFIRMED = "payments.v1.deposit.confirmed"
DETECTED = "payments.v1.deposit.detected"


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ARGV,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_private_key_in_a_setting_stops_the_start_without_showing_it() -> None:
    done = run_to_exit({"AIAPI_ETH_XPUB": ETH_XPRV, "AIAPI_ETH_RPC_URL": "http://127.0.0.1:9"})
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "AIAPI_ETH_XPUB holds an extended private key" in output
    assert ETH_XPRV not in output and ETH_XPRV[4:40] not in output


def test_a_mnemonic_in_a_secret_file_stops_the_start_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "wallet_backup").write_text(ABANDON + "\n")
    done = run_to_exit({"AIAPI_SECRETS_DIR": str(tmp_path)})
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "wallet_backup holds a BIP39 mnemonic" in output
    assert "abandon abandon" not in output


def test_an_address_0_that_does_not_match_the_key_stops_the_start() -> None:
    done = run_to_exit(
        {
            "AIAPI_ETH_RPC_URL": "http://127.0.0.1:9",
            "AIAPI_ETH_XPUB": ETH_XPUB,
            "AIAPI_ETH_ADDRESS_0": "0x" + "22" * 20,
        }
    )
    assert done.returncode == 2
    assert "AIAPI_ETH_ADDRESS_0 does not match" in done.stderr


def test_a_node_of_another_chain_stops_the_start(
    anvil_url: str, database_url: str, nats_url: str, tmp_path: Path
) -> None:
    env = payments_env(
        database_url,
        nats_url,
        AIAPI_ETH_RPC_URL=anvil_url,
        AIAPI_ETH_CHAIN_ID="1",  # anvil is 31337
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
    )
    done = run_to_exit(env)
    assert done.returncode == 2
    assert "chain id 31337, AIAPI_ETH_CHAIN_ID is 1" in done.stderr


async def test_with_no_chain_configured_it_runs_and_answers_empty_lists(
    spawn: Spawn, database_url: str, nats_url: str, bus: Bus
) -> None:
    env = payments_env(database_url, nats_url)
    process = start(spawn, env)
    async with httpx.AsyncClient() as client:
        ready = await client.get(health_url(env))
    assert ready.status_code == 200 and ready.json()["service"] == "payments"
    assert process.listening_ports() == {int(env["AIAPI_INTERNAL_PORT"])}  # no public port
    account = AccountQuery(account_id="acc_1")
    assert (await ask(bus, ADDRESSES_SUBJECT, account, AddressesReply)).addresses == []
    assert (await ask(bus, DEPOSITS_SUBJECT, account, DepositsReply)).deposits == []
    assert process.stop() == 0  # SIGTERM: a graceful stop
    assert '"level": "error"' not in process.log_text()


async def test_killed_after_crediting_before_publishing_the_credit_is_published_once(
    spawn: Spawn,
    chain: Chain,
    database_url: str,
    nats_server: EmbeddedNats,
) -> None:
    bus = await Bus.connect(nats_server.url, name="test-billing-side")
    try:
        await _crash_between_credit_and_publish(spawn, chain, database_url, nats_server, bus)
    finally:
        await bus.close()


async def _crash_between_credit_and_publish(
    spawn: Spawn, chain: Chain, database_url: str, nats_server: EmbeddedNats, bus: Bus
) -> None:
    token = await chain.deploy_token()
    env = payments_env(
        database_url,
        nats_server.url,
        AIAPI_ETH_RPC_URL=chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        AIAPI_ETH_CHAIN_ID="31337",
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
        AIAPI_USDT_CONTRACT=token.address,
        AIAPI_ETH_START_BLOCK=str(await chain.head() + 1),
    )
    process = start(spawn, env)
    reply = await ask(bus, ADDRESSES_SUBJECT, AccountQuery(account_id="acc_k"), AddressesReply)
    address = next(a.address for a in reply.addresses if a.asset == "USDT")

    # NATS goes away: the watcher still credits (in PostgreSQL), the relay cannot publish.
    nats_server.stop()
    await _pay(chain, token, address, 25_500_000)
    await chain.mine(FINALITY_LAG)
    await wait_for_row(
        database_url,
        "SELECT 1 FROM payments.deposits d JOIN payments.outbox o"
        " ON o.deposit_id = d.deposit_id AND o.subject = %s"
        " WHERE d.state = 'confirmed' AND o.published_at IS NULL",
        CONFIRMED,
    )
    process.kill()

    nats_server.start()
    process.start()
    row = await wait_for_row(
        database_url,
        "SELECT deposit_id, amount, usd_nano FROM payments.deposits WHERE state = 'credited'",
    )
    assert row[1:] == (25_500_000, 25_500_000_000)
    assert await stream_count(bus, CONFIRMED) == 1
    assert await stream_count(bus, DETECTED) == 1
    # Another crash and restart, with nothing pending, publishes nothing again.
    process.kill()
    process.start()
    await chain.mine(2)
    assert await _pending(database_url) == 0
    assert await stream_count(bus, CONFIRMED) == 1


async def _pay(chain: Chain, token: Any, to: str, amount: int) -> None:
    tx = await token.functions.transfer(to, amount).transact({"from": chain.accounts[0]})
    await chain.w3.eth.wait_for_transaction_receipt(tx)


async def _pending(database_url: str) -> int:
    rows = await query(
        database_url, "SELECT count(*) FROM payments.outbox WHERE published_at IS NULL"
    )
    return int(rows[0][0])


def networks_env(
    database_url: str, nats_url: str, url: str, token: str, **extra: str
) -> dict[str, str]:
    """Base (an AIAPI_EVM_CHAINS entry) and TRON, both served by the one anvil (chain 31337)."""
    chains = [{"network": "base", "chain_id": 31337, "rpc_url": url, "tokens": {"USDC": token}}]
    settings = {
        "AIAPI_TRON_CHAIN_ID": "31337",
        **extra,
    }
    return payments_env(
        database_url,
        nats_url,
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
        AIAPI_EVM_CHAINS=json.dumps(chains),
        AIAPI_TRON_RPC_URL=url,
        AIAPI_TRON_XPUB=TRON_XPUB,
        AIAPI_TRON_ADDRESS_0=TRON_ADDRESS_0,
        AIAPI_TRON_USDT_CONTRACT=tron_from_hex(token),
        AIAPI_TRON_POLL_INTERVAL_S="0.2",
        **settings,
    )


async def test_the_process_follows_every_configured_network(
    spawn: Spawn, chain: Chain, database_url: str, nats_url: str, bus: Bus
) -> None:
    token = await chain.deploy_token("USDC")
    url = chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    wrong = networks_env(database_url, nats_url, url, token.address, AIAPI_TRON_CHAIN_ID="1")
    done = run_to_exit(wrong)
    assert done.returncode == 2
    assert "tron: the node reports chain id 31337, AIAPI_TRON_CHAIN_ID is 1" in done.stderr

    env = networks_env(database_url, nats_url, url, token.address)
    process = start(spawn, env)
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(process.probe_url("/metrics"))).text
    enabled = re.findall(r'^aiapi_payments_network_enabled\{network="(\w+)"\} 1$', metrics, re.M)
    assert enabled == ["base", "tron"]
    assert not re.search(r"^aiapi_payments_depeg_paused\{.*\} 1$", metrics, re.M)
    account = AccountQuery(account_id="acc_n")
    shown = (await ask(bus, ADDRESSES_SUBJECT, account, AddressesReply)).addresses
    assert [(a.asset, a.network, a.address) for a in shown] == [
        ("USDC", "base", eth_deposit_address(1)),
        ("USDT", "tron", tron_deposit_address(1)),
    ]
    tx = await token.functions.transfer(eth_deposit_address(1), 9_000_000).transact(
        {"from": chain.accounts[0]}
    )
    await chain.w3.eth.wait_for_transaction_receipt(tx)
    await chain.mine(FINALITY_LAG)

    async def listed() -> list[tuple[str, str, str, int | None]]:
        deposits = (await ask(bus, DEPOSITS_SUBJECT, account, DepositsReply)).deposits
        return [(d.network, d.asset, d.state, d.confirmations_required) for d in deposits]

    # The same transfer is a USDC deposit on Base; on "TRON" (the same node, the same
    # contract as TRON's USDT) the address is another one, so nothing arrives there.
    for _ in range(300):
        if (rows := await listed()) and rows[0][2] == "credited":
            break
        await asyncio.sleep(0.1)
    assert rows == [("base", "USDC", "credited", FINALITY_LAG + 1)]
    plan = await ask(bus, SWEEP_PLAN_SUBJECT, SweepPlanQuery(), SweepPlanReply)
    assert [(t.network, t.asset, t.amount) for t in plan.transfers] == [("base", "USDC", "9")]
