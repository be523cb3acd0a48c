"""Headless Chromium for browser tests: Debian's own binary driven by Playwright, never a downloaded one."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route

from tests.support.servers import LiveServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 90_000  # how long a browser test waits for the page (a bound on a hang: a loaded machine is slow)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def open_page(browser: Browser, server: LiveServer, width: int = 1280, height: int = 900) -> Page:
    """A new page (in a context of its own) on ``server``, waiting ``WAIT_MS`` for what it needs."""
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=WAIT_MS)


def artifacts_dir() -> Path:
    """Where screenshots go: ``$DEEPCANVAS_ARTIFACTS``, else ``tests/artifacts`` (git-ignored)."""
    folder = Path(os.environ.get("DEEPCANVAS_ARTIFACTS", REPO / "tests" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    path = artifacts_dir() / f"web-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@dataclass
class PageErrors:
    """Script errors and console errors (a Content-Security-Policy violation is one) seen by a page."""

    messages: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Page) -> PageErrors:
        errors = cls()
        page.on("pageerror", lambda error: errors.messages.append(f"page error: {error}"))
        page.on("console", errors._on_console)
        return errors

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")


def record_form_fields(page: Page, url_pattern: str) -> list[dict[str, str]]:
    """The fields of every multipart request the page sends to ``url_pattern``, which go on unchanged.

    Text fields map to their values, file fields to ``file:<file name>``: Chromium reports a request body
    only while the request is intercepted, and then without file contents.
    """
    sent: list[dict[str, str]] = []

    def record(route: Route) -> None:
        body = route.request.post_data_buffer or b""
        texts = re.findall(rb'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', body)
        files = re.findall(rb'name="([^"]+)"; filename="([^"]*)"', body)
        fields = {name.decode(): value.decode() for name, value in texts}
        sent.append(fields | {name.decode(): f"file:{value.decode()}" for name, value in files})
        route.continue_()

    page.route(url_pattern, record)
    return sent
