"""The accessibility check the browser tests run on every page they screenshot is real: it
catches a critical violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.conftest import axe_source, check_accessibility


def test_axe_catches_a_button_without_a_name(browser: Browser) -> None:
    context = browser.new_context()
    try:
        context.add_init_script(script=axe_source())
        page = context.new_page()
        page.set_content('<html lang="en"><title>t</title><main><button></button></main></html>')
        with pytest.raises(AssertionError, match="button-name"):
            check_accessibility(page)
        page.set_content('<html lang="en"><title>t</title><main><button>Go</button></main></html>')
        check_accessibility(page)
    finally:
        context.close()
