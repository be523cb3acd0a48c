"""The page's finest mode (classical NST) in a real headless Chromium against the real server on the embedded store.

Budgets stay tiny and photos small (128 px): NST paints for its whole budget on the 2-core runner.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from app.telemetry import NST_ROUTE
from tests.e2e.browser_support import CHROMIUM, PageErrors, open_page, record_form_fields, screenshot
from tests.e2e.test_web_page import gallery_radios, upload_photo
from tests.support.images import face_like_photo
from tests.support.servers import HTTP_TIMEOUT, LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]

ABANDONED_NST = re.compile(
    rf'^deepcanvas_requests_total\{{method="POST",route="{re.escape(NST_ROUTE)}",status="499"\}} (\S+)$', re.MULTILINE
)


@pytest.fixture
def small_photo(tmp_path: Path) -> Path:
    path = tmp_path / "small.jpg"
    path.write_bytes(face_like_photo(128, 96))
    return path


@pytest.fixture(scope="module")
def nst_limits(live_server: LiveServer) -> dict[str, object]:
    """What GET /styles says of NST on the test server: the page must offer it with these bounds."""
    nst: dict[str, object] = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["nst"]
    assert nst["available"] is True, nst  # torch is installed where these tests run
    return nst


def choose_finest(page: Page, budget: str) -> None:
    page.locator("label:has(#method-nst)").click()
    expect(page.locator("#method-nst")).to_be_checked()
    page.locator("#nst-seconds").fill(budget)


def abandoned_paintings(server: LiveServer) -> float:
    """NST requests whose client left before the answer (/metrics: status 499 on NST's own route)."""
    found = ABANDONED_NST.search(httpx.get(f"{server.url}/metrics", timeout=HTTP_TIMEOUT).text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("width", [1280, 375])
def test_the_finest_mode_sends_nst_with_its_budget_and_shows_the_steps_it_took(
    browser: Browser, live_server: LiveServer, small_photo: Path, nst_limits: dict[str, object], width: int
) -> None:
    page = open_page(browser, live_server, width=width)
    try:
        errors = PageErrors.watch(page)
        upload_photo(page, small_photo)
        chosen = gallery_radios(page)[1]
        page.locator(f"#gallery label:has(input[value='{chosen}'])").click()
        limit = f"{nst_limits['max_seconds']:g}"
        finest = page.locator("label:has(#method-nst)")
        expect(finest).to_contain_text(re.compile(rf"slow: up to {limit}\s+seconds"))
        expect(page.locator("#budget-field")).to_be_hidden()
        choose_finest(page, "1.5")  # not only whole seconds: the service takes any budget above 0
        # NST takes no alpha, manner nor the photo's colours: their fields go, the budget's comes, bounded as served
        for field in ("#alpha", "#manner", "#preserve-color"):
            expect(page.locator(field)).to_be_hidden()
        budget = page.locator("#nst-seconds")
        expect(budget).to_be_visible()
        expect(budget).to_have_attribute("max", limit)
        expect(page.locator("#nst-seconds-hint")).to_contain_text(f"up to {nst_limits['max_side']} px")
        page.locator("#mode-fieldset").scroll_into_view_if_needed()
        # not full_page: Chromium restores the scroll of a full-page shot late, and the click below then missed
        screenshot(page, f"nst-chosen-{width}", full_page=False)

        sent = record_form_fields(page, "**/stylize")
        with page.expect_response("**/stylize") as response_info:
            page.locator("#stylize-button").click()
        response = response_info.value
        assert response.ok, response.text()
        fields = {"content": "file:small.jpg", "style_name": chosen, "method": "nst", "max_seconds": "1.5"}
        assert sent == [fields | {"format": "png"}]
        steps = int(response.headers["x-nst-steps"])
        assert steps >= 1
        status = page.get_by_role("status").filter(has_text="Stylized")
        taken = rf"Stylized in \d+(\.\d)?\s+s with {steps} optimisation steps: see “Your stylized photo”\."
        expect(status).to_have_text(re.compile(rf"^{taken}$"))
        note = page.locator("#stylized-note")
        expect(note).to_have_text(re.compile(rf"^Finest mode: {steps} optimisation steps in \d+(\.\d)?\s+s$"))
        page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
        assert page.locator("#stylized-image").evaluate("img => Math.max(img.naturalWidth, img.naturalHeight)") == 128
        expect(page.locator("#download-link")).to_have_attribute("download", f"small-{chosen}-nst.png")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the window"
        page.locator("#stylized-image").scroll_into_view_if_needed()
        screenshot(page, f"nst-result-{width}")

        # back to the fast mode: its fields return, and it sends no NST field
        page.locator("label:has(input[name=method][value=adain])").click()
        expect(page.locator("#alpha")).to_be_visible()
        expect(page.locator("#budget-field")).to_be_hidden()
        with page.expect_response("**/stylize") as response_info:
            page.locator("#stylize-button").click()
        assert response_info.value.ok and "x-nst-steps" not in response_info.value.headers
        assert "method" not in sent[1] and "max_seconds" not in sent[1] and sent[1]["alpha"] == "1"
        expect(note).to_have_text(re.compile(r"^Fast mode, \d+(\.\d)?\s+s$"))
        assert errors.messages == []
    finally:
        page.context.close()


def test_cancel_stops_the_painting_on_the_server(
    browser: Browser, live_server: LiveServer, small_photo: Path, nst_limits: dict[str, object]
) -> None:
    """Cancel aborts the request; the service, whose client left, stops painting at once, not after 30 s."""
    page = open_page(browser, live_server, width=1280, height=800)
    try:
        errors = PageErrors.watch(page)
        upload_photo(page, small_photo)
        gallery_radios(page)
        choose_finest(page, "30")
        abandoned_before = abandoned_paintings(live_server)
        page.locator("#stylize-button").click()
        live_server.wait_slot_busy("nst")  # the optimisation is under way on the server
        status = page.locator("#stylize-status")
        expect(status).to_have_text(re.compile(r"^Painting in the finest mode, for up to 30\s+s…$"))
        elapsed = page.get_by_role("timer")
        expect(elapsed).to_have_text(re.compile(r"^[1-9]\d*\s+s of up to 30\s+s$"))  # it counts the seconds
        assert page.locator("#nst-bar").evaluate("bar => [bar.value > 0, bar.max]") == [True, 30]
        cancel = page.get_by_role("button", name="Cancel")
        expect(cancel).to_be_in_viewport()
        expect(page.locator("#stylize-button")).to_have_attribute("aria-disabled", "true")
        screenshot(page, "nst-painting", full_page=False)

        cancel.click()
        cancelled = time.monotonic()
        expect(status).to_have_text("Cancelled: the painting was stopped.")
        live_server.wait_slot_idle("nst", timeout=25)  # the stopped optimisation has ended...
        assert time.monotonic() - cancelled < 15, "the painting ran on after Cancel"  # ...long before its 30 s
        # ...because its client left: NST's route counts one more abandoned request
        live_server.wait_metric(ABANDONED_NST.pattern, abandoned_before + 1, timeout=15)
        expect(cancel).to_be_hidden()
        expect(page.locator("#nst-progress")).to_be_hidden()
        expect(page.locator("#stylize-result")).to_be_hidden()
        expect(page.locator("#stylize-alert")).to_be_empty()
        expect(page.locator("#stylize-button")).not_to_have_attribute("aria-disabled", "true")
        expect(page.locator("#stylize-button")).to_be_focused()  # not lost with the hidden Cancel button
        assert errors.messages == []
    finally:
        page.context.close()


@pytest.fixture
def one_painting_held(live_server: LiveServer, nst_limits: dict[str, object]) -> Iterator[None]:
    """Another client's NST painting under way (8 s) for the test's duration; the queue holds one painting."""
    style = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    answers: list[int] = []

    def paint() -> None:
        data = {"style_name": style, "method": "nst", "max_seconds": "8", "max_side": "64"}
        files = {"content": ("other.jpg", face_like_photo(64, 48))}
        answers.append(httpx.post(f"{live_server.url}/stylize", files=files, data=data, timeout=120).status_code)

    other = threading.Thread(target=paint)
    other.start()
    try:
        live_server.wait_slot_busy("nst")
        yield
    finally:
        other.join(timeout=120)
    assert answers == [200]


def test_a_second_painting_while_one_paints_says_another_is_in_progress_and_when_to_retry(
    page: Page, small_photo: Path, one_painting_held: None
) -> None:
    upload_photo(page, small_photo)
    gallery_radios(page)
    choose_finest(page, "2")
    with page.expect_response("**/stylize") as response_info:
        page.locator("#stylize-button").click()
    refused = response_info.value
    assert refused.status == 503
    retry = refused.headers["retry-after"]
    assert int(retry) >= 1
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "Another painting is in progress: this service paints one picture in the finest mode at a time. "
        f"Please try again in {retry} s, or use the fast mode now."
    )
    expect(alert).to_be_in_viewport(ratio=1)
    expect(page.locator("#nst-progress")).to_be_hidden()
    expect(page.locator("#cancel-button")).to_be_hidden()
    expect(page.locator("#stylize-button")).not_to_have_attribute("aria-disabled", "true")
    screenshot(page, "nst-busy", full_page=False)


def test_a_refusal_is_told_apart_by_its_code_not_by_the_words_of_its_detail(page: Page, small_photo: Path) -> None:
    """A loading model whose detail happens to say "busy" is not another painting in progress: the page reads the
    body's code (the service's name for the error), not its prose."""
    detail = "model 'nst' is loading (the disk is busy); retry shortly"

    def loading(route: Route) -> None:
        body = json.dumps({"detail": detail, "code": "model_not_ready"})
        route.fulfill(status=503, headers={"Retry-After": "5", "Content-Type": "application/json"}, body=body)

    page.route("**/stylize", loading)
    upload_photo(page, small_photo)
    gallery_radios(page)
    choose_finest(page, "2")
    page.locator("#stylize-button").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(detail)
    expect(alert).to_contain_text("try again in 5 s")
    expect(alert).not_to_contain_text("Another painting is in progress")
