"""anvil for the tests and the fault run: installed from npm into .tools/ on first use, run on a
free loopback port.

The install (``aiapi_testkit.npm``) is idempotent and safe when test processes race for it.
`AIAPI_TEST_ANVIL` may name an anvil binary to use instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from aiapi_cli.ports import free_port, wait_for_port

from aiapi_testkit.npm import npm_install

ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64@1.7.1"
REPO_ROOT = Path(__file__).resolve().parents[4]  # tooling/testkit/src/aiapi_testkit/
TOOLS = REPO_ROOT / ".tools"
PREFIX = TOOLS / "anvil"
BINARY = PREFIX / "node_modules" / ".bin" / "anvil"

# With 2 slots per epoch anvil finalizes the block 4 below the head (safe: 2 below).
SLOTS_IN_AN_EPOCH = 2
FINALITY_LAG = 2 * SLOTS_IN_AN_EPOCH


def anvil_binary() -> Path:
    override = os.environ.get("AIAPI_TEST_ANVIL")
    if override:
        return Path(override)
    return npm_install(ANVIL_PACKAGE, PREFIX, BINARY)


@contextmanager
def running_anvil(log_path: Path, chain_id: int | None = None) -> Iterator[str]:
    """Start anvil with a short epoch on loopback; yields its RPC URL; stops it after.
    `chain_id`: another chain than anvil's 31337 (several networks at once)."""
    binary = anvil_binary()
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--slots-in-an-epoch",
                str(SLOTS_IN_AN_EPOCH),
                "--accounts",
                "4",
                *(["--chain-id", str(chain_id)] if chain_id is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port("127.0.0.1", port, timeout_s=30):
            raise RuntimeError(f"anvil did not listen:\n{log_path.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_anvils(directory: Path, *chain_ids: int) -> Iterator[dict[int, str]]:
    """Several anvil processes at once, one per chain id; yields their RPC URLs by chain id."""
    with ExitStack() as stack:
        yield {
            chain_id: stack.enter_context(
                running_anvil(directory / f"anvil-{chain_id}.log", chain_id)
            )
            for chain_id in chain_ids
        }
