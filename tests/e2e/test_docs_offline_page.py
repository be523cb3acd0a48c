"""The API reference at /docs in headless Chromium with every host but loopback blocked: a machine offline.

Users run the service on laptops and inside private networks without internet access, where a page that
loads Swagger UI from a CDN stays blank.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Locator, Page, Route, expect

from app.bench import free_port
from app.main import create_app
from app.settings import Settings
from tests.e2e.browser_support import CHROMIUM, PageErrors, screenshot
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.images import face_like_photo
from tests.support.servers import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
KEY = "docs-e2e-key-0123456789abcdef"
WAIT_MS = 90_000


@dataclass
class OfflinePage:
    """A page whose requests to any host but loopback fail as they do without a network; ``blocked`` lists them."""

    page: Page
    blocked: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, base_url: str) -> OfflinePage:
        page = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 1000}).new_page()
        page.set_default_timeout(WAIT_MS)
        offline = cls(page)
        page.route("**/*", offline._only_loopback)
        return offline

    def _only_loopback(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")


def operation(page: Page, method: str, path: str) -> Locator:
    """The rendered operation block of ``method path`` (Swagger UI marks the path exactly in ``data-path``)."""
    return page.locator(f".opblock.opblock-{method}").filter(has=page.locator(f'[data-path="{path}"]'))


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with API keys on fake models, served by uvicorn on loopback in this process."""
    folder = tmp_path_factory.mktemp("keyed-docs")
    settings = Settings(store=make_fake_store(folder / "store").as_uri(), cache_dir=folder / "cache", api_keys=KEY)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, fake_plans()), "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="keyed-docs-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # bounds a hang: fake models load in a second, or more on a loaded machine
    while not server.started or httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline and thread.is_alive(), "the keyed service did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(15)


def test_the_docs_render_every_operation_with_the_internet_blocked(browser: Browser, live_server: LiveServer) -> None:
    offline = OfflinePage.open(browser, live_server.url)
    page, errors = offline.page, PageErrors.watch(offline.page)
    page.goto("/docs")
    detect = operation(page, "post", "/detect")
    expect(detect).to_be_visible(timeout=WAIT_MS)  # a 1.6 MB script to parse, on a busy machine too
    expect(detect.locator(".opblock-summary-method")).to_have_text("POST")
    schema = httpx.get(f"{live_server.url}/openapi.json", timeout=30).json()
    expected = sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)
    blocks = page.locator(".opblock")
    rendered = sorted(
        (block.locator(".opblock-summary-method").inner_text(), block.locator("[data-path]").get_attribute("data-path"))
        for block in blocks.all()
    )
    assert rendered == expected
    screenshot(page, "docs-offline", full_page=False)
    assert offline.blocked == [], "the docs page asked another host for something"
    assert errors.messages == []
    page.context.close()


def test_the_authorize_button_sends_the_api_key_with_the_internet_blocked(
    browser: Browser, keyed_service: str, tmp_path: Path
) -> None:
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(face_like_photo(320, 240))
    offline = OfflinePage.open(browser, keyed_service)
    page, errors = offline.page, PageErrors.watch(offline.page)
    page.goto("/docs")
    detect = operation(page, "post", "/detect")
    detect.locator(".opblock-summary").click()
    detect.get_by_role("button", name="Try it out").click()
    detect.locator("input[type=file]").first.set_input_files(str(photo))
    status = detect.locator(".live-responses-table tr.response .response-col_status")

    detect.get_by_role("button", name="Execute").click()
    expect(status).to_have_text("401", timeout=WAIT_MS)

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_contain_text("(http, Bearer)", timeout=WAIT_MS)
    dialog.locator("#auth-bearer-value").fill(KEY)
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()
    detect.get_by_role("button", name="Execute").click()
    expect(status).to_have_text("200", timeout=WAIT_MS)
    expect(detect.locator(".curl-command")).to_contain_text(f"Authorization: Bearer {KEY}")
    screenshot(page, "docs-offline-authorized", full_page=False)
    assert offline.blocked == []
    assert [message for message in errors.messages if "401" not in message] == []  # the refused call, logged
    page.context.close()
