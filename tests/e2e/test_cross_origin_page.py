"""A web app on another origin calls the real server from headless Chromium: CORS as a browser enforces it.

The app's page is served by a second HTTP server on loopback (another port is another origin); the browser
sends the preflight, checks the answer's headers and hides what the service does not expose.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.e2e.browser_support import CHROMIUM
from tests.support.servers import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.shared,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]
# The app's script: the photo from its own origin, POSTed to the service with a header that needs a preflight.
CALL = """async ([service, file]) => {
  const photo = await (await fetch('photo.jpg')).blob();
  const form = new FormData();
  form.append('image', file === 'empty' ? new Blob([]) : photo, 'photo.jpg');
  try {
    const answer = await fetch(service + '/detect', {method: 'POST', body: form, headers: {'X-Request-ID': 'app-42'}});
    return {status: answer.status, body: await answer.json(), timing: answer.headers.get('Server-Timing'),
            id: answer.headers.get('X-Request-ID')};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def app_origins(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two static sites on loopback serving the app's page and a photo: one the service lists, one it does not."""
    folder = tmp_path_factory.mktemp("app")
    shutil.copy(shared_dir / "data/lfw-funneled/images/Serena_Williams/Serena_Williams_0040.jpg", folder / "photo.jpg")
    (folder / "index.html").write_text("<!doctype html><title>An app</title><p>Another origin</p>")
    sites = [
        ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder))) for _ in "ab"
    ]
    for site in sites:
        threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        listed, other = (f"http://127.0.0.1:{site.server_address[1]}" for site in sites)
        yield listed, other
    finally:
        for site in sites:
            site.shutdown()
            site.server_close()


@pytest.fixture(scope="module")
def server(
    embedded_store: Path, tmp_path_factory: pytest.TempPathFactory, app_origins: tuple[str, str]
) -> Iterator[LiveServer]:
    env = {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "DEEPCANVAS_CORS_ORIGINS": app_origins[0]}
    with LiveServer.ready(embedded_store.as_uri(), env) as server:
        yield server


def call_from(browser: Browser, origin: str, service: str, file: str = "photo") -> dict[str, Any]:
    page = browser.new_page()
    try:
        page.goto(f"{origin}/index.html")
        return dict(page.evaluate(CALL, [service, file]))
    finally:
        page.close()


def test_a_listed_origin_calls_detect_and_reads_the_answer_and_its_headers(
    browser: Browser, server: LiveServer, app_origins: tuple[str, str]
) -> None:
    answer = call_from(browser, app_origins[0], server.url)
    assert answer.get("status") == 200, answer
    assert len(answer["body"]["detections"]) == 1
    assert answer["id"] == "app-42"  # the request header passed the preflight, the answer's is exposed
    assert "total;dur=" in answer["timing"]


def test_a_listed_origin_reads_an_error_as_json(
    browser: Browser, server: LiveServer, app_origins: tuple[str, str]
) -> None:
    answer = call_from(browser, app_origins[0], server.url, file="empty")
    assert answer.get("status") == 400, answer
    assert "empty" in answer["body"]["detail"]


def test_an_origin_not_listed_is_refused_by_the_browser(
    browser: Browser, server: LiveServer, app_origins: tuple[str, str]
) -> None:
    answer = call_from(browser, app_origins[1], server.url)
    assert answer == {"error": "TypeError: Failed to fetch"}
