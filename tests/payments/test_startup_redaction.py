"""A start-up failure is logged with its traceback, redacted: a node URL (which may carry a
provider's API key, as Infura's and Alchemy's do) never reaches the log."""

from __future__ import annotations

import json
import secrets

from aiapi_cli.ports import free_port

from tests.payments.service import payments_env
from tests.payments.test_service import run_to_exit
from tests.payments.wallets import ETH_ADDRESS_0, ETH_XPUB, TRON_ADDRESS_0, TRON_XPUB


def test_a_node_that_cannot_be_reached_fails_the_start_without_showing_its_url(
    database_url: str, nats_url: str
) -> None:
    provider_key = "k" + secrets.token_hex(16)
    node = f"http://127.0.0.1:{free_port()}/v3/{provider_key}"  # nothing listens there
    env = payments_env(
        database_url,
        nats_url,
        AIAPI_ETH_RPC_URL=node,
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
    )
    done = run_to_exit(env)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "payments could not start" in output
    assert "Traceback" in output  # still a traceback to debug with
    assert [line for line in output.splitlines() if provider_key in line] == []


def test_the_urls_of_every_network_are_redacted_too(database_url: str, nats_url: str) -> None:
    """AIAPI_EVM_CHAINS and AIAPI_TRON_RPC_URL carry provider keys as often as the Ethereum URL."""
    base_key, tron_key = ("k" + secrets.token_hex(16) for _ in range(2))
    base = f"http://127.0.0.1:{free_port()}/v2/{base_key}"  # nothing listens there
    chains = [{"network": "base", "rpc_url": base}]
    env = payments_env(
        database_url,
        nats_url,
        AIAPI_EVM_CHAINS=json.dumps(chains),
        AIAPI_ETH_XPUB=ETH_XPUB,
        AIAPI_ETH_ADDRESS_0=ETH_ADDRESS_0,
        AIAPI_TRON_RPC_URL=f"http://127.0.0.1:{free_port()}/jsonrpc/{tron_key}",
        AIAPI_TRON_XPUB=TRON_XPUB,
        AIAPI_TRON_ADDRESS_0=TRON_ADDRESS_0,
    )
    done = run_to_exit(env)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "Traceback" in output
    assert [line for line in output.splitlines() if base_key in line or tron_key in line] == []
