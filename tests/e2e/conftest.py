"""Fixtures of the browser tests: one headless Chromium per module (Debian's binary, see browser_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.browser_support import WAIT_MS, launch_chromium, open_page
from tests.support.servers import LiveServer

# expect() waits 5 s by default, whatever a page's default timeout: too short for an answer of the real service on
# a loaded machine. It passes as soon as its condition holds; the wait only bounds a failure. (Set here, on import,
# for every browser test: some launch their own Chromium.)
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """The service's page in the module's browser, 1280 × 900 (a test wanting another size calls ``open_page``)."""
    page = open_page(browser, live_server)
    yield page
    page.context.close()
