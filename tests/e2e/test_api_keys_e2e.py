"""A service started with API keys, called by the client, the command line and the page in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from typer.testing import CliRunner

from deepcanvas import Client
from deepcanvas.cli import client_cli
from deepcanvas.errors import Forbidden, Unauthorized
from tests.e2e.browser_support import CHROMIUM, PageErrors, launch_chromium, screenshot
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e
KEY = "e2e-key-0123456789abcdef"
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "DEEPCANVAS_API_KEYS": KEY}
    with LiveServer.ready(embedded_store.as_uri(), env) as server:
        yield server


@pytest.fixture
def photo(tmp_path: Path, sample_photo_bytes: bytes) -> Path:
    path = tmp_path / "portrait.jpg"
    path.write_bytes(sample_photo_bytes)
    return path


def test_the_client_sends_its_key_and_without_one_is_told_why(server: LiveServer, photo: Path) -> None:
    with Client(server.url, api_key=KEY) as dc:
        assert dc.detect(photo).detections
        assert dc.styles().styles  # the catalog is open either way
    with Client(server.url) as dc, pytest.raises(Unauthorized, match="API key"):
        dc.detect(photo)
    with Client(server.url, api_key="not-this-services-key") as dc, pytest.raises(Forbidden):
        dc.classify(photo)


def test_the_command_line_takes_the_key_from_its_variable(
    server: LiveServer, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPCANVAS_API_KEY", raising=False)
    refused = CliRunner().invoke(client_cli, ["detect", str(photo), "--url", server.url])
    assert refused.exit_code == 1 and "error 401" in refused.output and "API key" in refused.output
    monkeypatch.setenv("DEEPCANVAS_API_KEY", KEY)
    answered = CliRunner().invoke(client_cli, ["detect", str(photo), "--url", server.url, "--json"])
    assert answered.exit_code == 0, answered.output


def test_health_and_metrics_answer_without_a_key(server: LiveServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_the_page_asks_for_the_key_once_and_then_finds_the_faces(server: LiveServer, photo: Path) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page: Page = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(WAIT_MS)
            errors = PageErrors.watch(page)
            page.goto("/")
            expect(page.locator("#gallery input[name=style]").first).to_be_attached()  # the gallery needs no key
            expect(page.locator("#key-form")).to_be_hidden()
            page.set_input_files("#photo-input", str(photo))
            expect(page.locator("#alert")).to_contain_text("needs an API key")
            expect(page.locator("#key-form")).to_be_visible()
            expect(page.locator("#api-key")).to_be_focused()
            screenshot(page, "api-key-asked", full_page=False)
            page.fill("#api-key", KEY)
            page.click("#key-form button")
            expect(page.locator("#alert")).to_be_empty()
            page.set_input_files("#photo-input", [])
            page.set_input_files("#photo-input", str(photo))
            expect(page.locator("#faces-summary")).to_have_text(re.compile(r"^\d+ faces? found\.$"))
            page.reload()  # the key stays for the tab, and the field with it
            expect(page.locator("#key-form")).to_be_visible()
            expect(page.locator("#api-key")).to_have_value(KEY)
            assert [m for m in errors.messages if "401" not in m] == []  # the browser logs the refused call
        finally:
            browser.close()
