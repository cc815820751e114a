"""The chart library the dashboard serves is npm's published build, byte for byte: the vendored
file (``pages/static/vendor``) is what ``npm install chart.js@<version>`` brings, so it can be
rebuilt and checked without trusting the copy in the repository."""

from __future__ import annotations

from pathlib import Path

import aiapi_accounts
from aiapi_testkit.npm import npm_install

from tests.dashboard.conftest import TOOLS

PACKAGE = "chart.js@4.6.1"  # also named in docs/dashboard.md and the file's own banner
VENDOR = Path(aiapi_accounts.__file__).parent / "pages" / "static" / "vendor"


def test_the_vendored_chart_js_is_the_npm_build() -> None:
    prefix = TOOLS / "chartjs"
    installed = npm_install(PACKAGE, prefix, prefix / "node_modules" / "chart.js" / "package.json")
    dist = installed.parent
    assert (VENDOR / "chart.umd.min.js").read_bytes() == (
        dist / "dist" / "chart.umd.min.js"
    ).read_bytes()
    assert (VENDOR / "chart.js.LICENSE.md").read_bytes() == (dist / "LICENSE.md").read_bytes()
    version = PACKAGE.rsplit("@", 1)[1]
    assert f"Chart.js v{version}" in (VENDOR / "chart.umd.min.js").read_text("utf-8")[:200]
