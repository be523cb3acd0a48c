"""The page's "Who is this?" section in headless Chromium against the real server, on real LFW faces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.browser_support import CHROMIUM, PageErrors, launch_chromium, screenshot
from tests.support.servers import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.shared,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]
TOKEN = "page-token-0123456789abcdef"
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def lfw(shared_dir: Path) -> Path:
    return shared_dir / "data" / "lfw-funneled" / "images"


@pytest.fixture(scope="module")
def server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory, lfw: Path) -> Iterator[LiveServer]:
    env = {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "DEEPCANVAS_ADMIN_TOKEN": TOKEN}
    with LiveServer.ready(embedded_store.as_uri(), env) as server:
        photos = sorted((lfw / "Serena_Williams").glob("*.jpg"))[:2]
        files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        enrolled = httpx.post(
            f"{server.url}/identities", data={"name": "Serena Williams"}, files=files, headers=headers, timeout=120
        )
        assert enrolled.status_code == 201, enrolled.text
        yield server


@pytest.fixture
def page(server: LiveServer) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser: Browser = launch_chromium(playwright)
        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        yield page
        browser.close()


def test_who_is_this_draws_the_enrolled_name_and_unknown_for_a_stranger(page: Page, lfw: Path) -> None:
    errors = PageErrors.watch(page)
    page.goto("/")
    page.set_input_files("#identify-input", str(sorted((lfw / "Serena_Williams").glob("*.jpg"))[4]))
    expect(page.locator("#identify-summary")).to_have_text("1 face found, 1 named.")
    box = page.locator("#identify-boxes .face-box")
    expect(box).to_have_count(1)
    expect(box).to_have_text(re.compile(r"^1\. Serena Williams \d+%$"))
    expect(page.locator("#identify-list li")).to_have_text(re.compile(r"^Face 1: Serena Williams \d+% at x "))
    expect(page.locator("#answered")).to_contain_text("face-embedder v1")
    screenshot(page, "identify-named")

    page.set_input_files("#identify-input", str(sorted((lfw / "Arnold_Schwarzenegger").glob("*.jpg"))[0]))
    expect(page.locator("#identify-summary")).to_have_text("1 face found, 0 named.")
    expect(page.locator("#identify-boxes .face-box.unknown")).to_have_text("1. unknown")
    screenshot(page, "identify-unknown")
    assert errors.messages == []


def test_who_is_this_says_why_when_the_photo_is_not_an_image(page: Page, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    page.goto("/")
    page.set_input_files("#identify-input", str(text))
    expect(page.locator("#identify-summary")).to_have_text("This photo could not be identified.")
    expect(page.locator("#alert")).to_contain_text("Identifying the photo failed (415)")


def test_who_is_this_says_when_a_photo_has_no_face(page: Page, tmp_path: Path) -> None:
    errors = PageErrors.watch(page)
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (120, 130, 140)).save(blank)
    page.goto("/")
    page.set_input_files("#identify-input", str(blank))
    expect(page.locator("#identify-summary")).to_have_text("No face found in this photo.")
    expect(page.locator("#alert")).to_have_text("")
    assert errors.messages == []  # an answer with no faces, not a failed request
