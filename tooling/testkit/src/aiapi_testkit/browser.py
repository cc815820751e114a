"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot be used here, so the tests drive the system's chromium.
``ensure_chromium`` installs it with apt when it is missing (:mod:`aiapi_testkit.apt`). ``AIAPI_TEST_CHROMIUM`` may name another chromium binary.
Concurrent test processes serialise the install on a lock file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from aiapi_testkit.apt import ensure_package

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


def ensure_chromium() -> Path:
    override = os.environ.get("AIAPI_TEST_CHROMIUM")
    if override:
        return Path(override)
    return ensure_package(CHROMIUM, "chromium")


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
