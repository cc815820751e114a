"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot be used here, so the tests drive the system's chromium.
``ensure_chromium`` installs it with apt when it is missing and the tests run as root (CI does);
otherwise it fails with what to run. ``AIAPI_TEST_CHROMIUM`` may name another chromium binary.
Concurrent test processes serialise the install on a lock file.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (root in a container has no user namespaces), no GPU, and nothing that reaches out
# to the network on its own: the tests send traffic only to loopback.
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_INSTALL_TIMEOUT_S = 900


def ensure_chromium() -> Path:
    override = os.environ.get("AIAPI_TEST_CHROMIUM")
    if override:
        return Path(override)
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise RuntimeError(
            f"the dashboard tests need chromium at {CHROMIUM}; as root, install it with "
            "apt-get (packages: chromium), or set AIAPI_TEST_CHROMIUM to a chromium binary"
        )
    lock_path = Path(tempfile.gettempdir()) / "aiapi-chromium-install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if CHROMIUM.exists():  # another test process installed it while we waited
            return CHROMIUM
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr[-2000:]}"
                )
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed chromium, but {CHROMIUM} is still missing")
    return CHROMIUM


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless chromium for one test. Per test, not per session: Playwright's synchronous API
    runs an event loop in this thread while it lives, and pytest-asyncio cannot start the async
    tests' loops beside it."""
    try:
        executable = ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), args=list(LAUNCH_ARGS), headless=True
        )
        try:
            yield launched
        finally:
            launched.close()
