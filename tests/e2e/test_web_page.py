"""The demo page at ``/`` in a real headless Chromium against the real server on the embedded store."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.browser_support import (
    CHROMIUM,
    PageErrors,
    artifacts_dir,
    open_page,
    record_form_fields,
    screenshot,
)
from tests.support.images import face_like_photo
from tests.support.servers import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]

FACES_SUMMARY = re.compile(r"^(No face found in this photo|\d+ faces? found)\.$")
WAIT_MS = 90_000


@pytest.fixture
def photo(tmp_path: Path, sample_photo_bytes: bytes) -> Path:
    path = tmp_path / "portrait.jpg"
    path.write_bytes(sample_photo_bytes)
    return path


@pytest.fixture
def large_photo(tmp_path: Path) -> Path:
    """1000×750 pixels: larger than the page shows it, whatever the window, so boxes must be scaled."""
    path = tmp_path / "large.jpg"
    path.write_bytes(face_like_photo(1000, 750))
    return path


def mocked_faces(*faces: tuple[list[float], str, float]) -> dict[str, object]:
    """A /classify answer, for tests of the drawing alone (the real models are untrained)."""
    return {
        "model": {"name": "face-gender", "version": "v-test"},
        "detector": {"name": "face-detector", "version": "v-test"},
        "faces": [
            {"box": box, "label": label, "score": score, "probabilities": {label: score}} for box, label, score in faces
        ],
    }


@pytest.fixture(scope="module")
def loaded_models(live_server: LiveServer) -> dict[str, dict[str, str]]:
    """GET /models by role: what the page must say answered."""
    models = httpx.get(f"{live_server.url}/models", timeout=30).json()["models"]
    return {m["role"]: m for m in models}


def upload_photo(page: Page, photo: Path) -> None:
    page.goto("/")
    page.set_input_files("#photo-input", str(photo))
    expect(page.locator("#faces-summary")).to_have_text(FACES_SUMMARY, timeout=WAIT_MS)


def gallery_radios(page: Page) -> list[str]:
    radios = page.locator("#gallery input[name=style]")
    expect(radios.first).to_be_attached(timeout=WAIT_MS)
    return [radios.nth(i).get_attribute("value") or "" for i in range(radios.count())]


def test_page_is_served_with_a_strict_content_security_policy(live_server: LiveServer) -> None:
    page = httpx.get(live_server.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert (
        httpx.get(live_server.url + "/static/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    )
    assert httpx.get(live_server.url + "/static/index.html", timeout=10).status_code == 404


def test_uploaded_photo_shows_labelled_faces_or_says_none_were_found(
    page: Page, photo: Path, loaded_models: dict[str, dict[str, str]]
) -> None:
    errors = PageErrors.watch(page)
    upload_photo(page, photo)
    summary = page.locator("#faces-summary").inner_text()
    boxes = page.locator("#face-boxes .face-box")
    if summary.startswith("No face"):
        expect(boxes).to_have_count(0)
    else:
        count = int(summary.split()[0])
        expect(boxes).to_have_count(count)
        expect(page.locator("#faces-list li")).to_have_count(count)
        expect(boxes.first).to_have_text(re.compile(r"^1\. \S+ \d+%$"))
    answered = page.locator("#answered")
    for role in ("classifier", "detector"):
        expect(answered).to_contain_text(f"{loaded_models[role]['name']} {loaded_models[role]['version']}")
    screenshot(page, "classify")
    assert errors.messages == []


def test_face_boxes_are_drawn_over_the_photo_at_its_displayed_scale(
    browser: Browser, live_server: LiveServer, large_photo: Path
) -> None:
    page = open_page(browser, live_server, width=800, height=560)
    answer = mocked_faces(([128, 64, 384, 320], "female", 0.93))
    page.route("**/classify", lambda route: route.fulfill(json=answer))
    upload_photo(page, large_photo)
    expect(page.locator("#faces-summary")).to_have_text("1 face found.")
    image, box = page.locator("#photo-preview"), page.locator("#face-boxes .face-box")
    expect(box).to_have_text("1. female 93%")
    natural = image.evaluate("img => img.naturalWidth")
    shown, drawn = image.bounding_box(), box.bounding_box()
    assert shown and drawn and shown["width"] < natural, "the photo should be displayed scaled down"
    scale = shown["width"] / natural
    expected = (shown["x"] + 128 * scale, shown["y"] + 64 * scale, 256 * scale, 256 * scale)
    actual = (drawn["x"], drawn["y"], drawn["width"], drawn["height"])
    assert actual == pytest.approx(expected, abs=1.5)
    screenshot(page, "boxes-scaled")
    page.context.close()


def test_stylize_with_a_gallery_style_shows_the_result_and_a_download_link(
    page: Page, photo: Path, loaded_models: dict[str, dict[str, str]]
) -> None:
    errors = PageErrors.watch(page)
    upload_photo(page, photo)
    names = gallery_radios(page)
    chosen = names[-1]
    # the public-domain paintings are credited under their thumbnails
    expect(page.locator("#gallery label:has(input[value='starry-night'])")).to_contain_text("Vincent van Gogh, 1889")
    page.locator(f"#gallery label:has(input[value='{chosen}'])").click()
    page.locator("#alpha").fill("0.5")
    expect(page.locator("#alpha-value")).to_have_text("0.50")
    page.locator("#manner").fill("0.25")  # the stable style model matches the painting's manner
    expect(page.locator("#manner-value")).to_have_text("0.25")
    page.locator("#preserve-color").check()
    sent = record_form_fields(page, "**/stylize")
    with page.expect_response("**/stylize") as response_info:
        page.locator("#stylize-button").click()
    assert response_info.value.ok, response_info.value.text()
    expected = {"content": "file:portrait.jpg", "style_name": chosen, "alpha": "0.5", "manner": "0.25"}
    expected |= {"preserve_color": "true"}
    assert sent == [expected | {"format": "png"}]
    result = page.locator("#stylized-image")
    expect(result).to_be_visible()
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
    style = loaded_models["style"]
    expect(page.locator("#answered")).to_contain_text(f"{style['name']} {style['version']}")
    screenshot(page, "stylize")
    with page.expect_download() as download_info:
        page.locator("#download-link").click()
    download = download_info.value
    assert download.suggested_filename == f"portrait-{chosen}.png"
    assert Path(download.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert errors.messages == []


def test_the_manner_slider_sends_a_chosen_zero_and_nothing_untouched(page: Page, photo: Path) -> None:
    """Untouched, the model's default applies (no field); a manner the user chose is sent, 0 included: it overrides a
    model whose default paints each painting's own manner."""
    errors = PageErrors.watch(page)
    upload_photo(page, photo)
    chosen = gallery_radios(page)[0]
    page.locator(f"#gallery label:has(input[value='{chosen}'])").click()
    expect(page.locator("#manner-value")).to_have_text("default")
    expect(page.locator("#manner")).to_have_attribute("aria-valuetext", "the model's default")
    page.locator("#manner-field").screenshot(path=str(artifacts_dir() / "web-manner-default.png"))
    sent = record_form_fields(page, "**/stylize")
    for manner in (None, "0"):
        if manner is not None:
            page.locator("#manner").fill(manner)
            expect(page.locator("#manner-value")).to_have_text("0.00")
            expect(page.locator("#manner")).not_to_have_attribute("aria-valuetext", "the model's default")
        with page.expect_response("**/stylize") as response_info:
            page.locator("#stylize-button").click()
        assert response_info.value.ok, response_info.value.text()
    assert [fields.get("manner") for fields in sent] == [None, "0"]
    assert errors.messages == []


def test_a_file_that_is_not_an_image_shows_the_api_error_detail(
    page: Page, tmp_path: Path, live_server: LiveServer
) -> None:
    fake = tmp_path / "x.jpg"
    fake.write_bytes(b"this is plain text, not a photo\n" * 4)
    expected = httpx.post(
        f"{live_server.url}/classify", files={"image": ("x.jpg", fake.read_bytes(), "image/jpeg")}, timeout=30
    )
    assert expected.status_code == 415
    page.goto("/")
    page.set_input_files("#photo-input", str(fake))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(expected.json()["detail"])
    expect(alert).to_contain_text("415")
    expect(page.locator("#face-boxes .face-box")).to_have_count(0)
    expect(page.locator("#photo-stage")).to_be_hidden()
    screenshot(page, "error")


def test_an_uploaded_style_image_is_used_instead_of_a_gallery_style(page: Page, photo: Path, large_photo: Path) -> None:
    upload_photo(page, photo)
    gallery_radios(page)
    page.set_input_files("#style-input", str(large_photo))
    own = page.locator("#gallery input[data-upload]")
    expect(own).to_be_checked()
    expect(page.locator("#gallery label:has(input[data-upload])")).to_contain_text("Your image")
    sent = record_form_fields(page, "**/stylize")
    page.locator("#stylize-button").click()
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
    assert [(fields.get("style"), fields.get("style_name")) for fields in sent] == [("file:large.jpg", None)]
    expect(page.locator("#download-link")).to_have_attribute("download", "portrait-my-style.png")


def test_a_busy_service_shows_its_detail_and_when_to_retry(page: Page, photo: Path) -> None:
    def busy(route: Route) -> None:
        body = json.dumps({"detail": "model 'style' is busy: 32 requests waiting", "code": "overloaded"})
        route.fulfill(status=503, headers={"Retry-After": "7", "Content-Type": "application/json"}, body=body)

    page.route("**/stylize", busy)
    upload_photo(page, photo)
    gallery_radios(page)
    page.locator("#stylize-button").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("model 'style' is busy: 32 requests waiting")
    expect(alert).to_contain_text("try again in 7 s")
    expect(page.locator("#stylize-button")).not_to_have_attribute("aria-disabled", "true")


def test_keyboard_alone_selects_a_gallery_style_and_stylizes(page: Page, photo: Path) -> None:
    upload_photo(page, photo)
    names = gallery_radios(page)
    assert len(names) >= 2, "the gallery needs two styles to move between"
    page.locator("body").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name === 'style'"):
            break
    else:
        pytest.fail("Tab never reached the style gallery")
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("() => [document.activeElement.value, document.activeElement.checked]")
    assert focused == [names[1], True]
    thumb = page.locator(f"#gallery input[value='{names[1]}'] ~ .thumb")
    assert thumb.evaluate("img => getComputedStyle(img).outlineStyle") == "solid", "focus must be visible"
    screenshot(page, "keyboard-focus", full_page=False)
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id === 'stylize-button'"):
            break
    else:
        pytest.fail("Tab never reached the Stylize button")
    sent = record_form_fields(page, "**/stylize")
    with page.expect_response("**/stylize") as response_info:
        page.keyboard.press("Enter")
    assert response_info.value.ok
    assert [fields["style_name"] for fields in sent] == [names[1]]
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")


def test_phone_sized_window_needs_no_horizontal_scrolling(
    browser: Browser, live_server: LiveServer, large_photo: Path
) -> None:
    page = open_page(browser, live_server, width=375, height=740)
    # Boxes in the corners: their labels must stay inside the page.
    answer = mocked_faces(([0, 0, 90, 90], "female", 0.51), ([910, 660, 1000, 750], "male", 0.99))
    page.route("**/classify", lambda route: route.fulfill(json=answer))
    upload_photo(page, large_photo)
    gallery_radios(page)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 375px window"
    screenshot(page, "phone")
    page.context.close()


@pytest.fixture(scope="module")
def server_without_matching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The embedded store serving adain v2, a style model without decoder-side matching (no ``manner``), on
    OpenVINO: a real configuration without NST, as the slim image (no torch) has none."""
    from tests.conftest import EMBEDDED_STORE

    env = {
        "DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache-v2")),
        "DEEPCANVAS_STYLE": "adain:v2",
        "DEEPCANVAS_STYLE_BACKEND": "openvino",  # no NST: a quicker start, and this test needs only AdaIN
    }
    with LiveServer.ready(EMBEDDED_STORE.as_uri(), env) as server:
        yield server


def test_a_style_model_without_matching_hides_the_manner_slider_and_still_paints(
    browser: Browser, server_without_matching: LiveServer, photo: Path
) -> None:
    """The slider would only earn a 422 there: the page hides it and never sends ``manner``."""
    models = httpx.get(f"{server_without_matching.url}/models", timeout=30).json()["models"]
    style = next(m for m in models if m["role"] == "style")
    assert (style["version"], style["options"]) == ("v2", [])
    page = open_page(browser, server_without_matching)
    try:
        errors = PageErrors.watch(page)
        upload_photo(page, photo)
        chosen = gallery_radios(page)[0]
        page.locator(f"#gallery label:has(input[value='{chosen}'])").click()
        # the field starts hidden: decide only once the page has read /models (its table lists the style model)
        expect(page.locator("#models-table tr", has_text="adain")).to_contain_text("v2")
        expect(page.locator("#manner-field")).to_be_hidden()
        sent = record_form_fields(page, "**/stylize")
        with page.expect_response("**/stylize") as response_info:
            page.locator("#stylize-button").click()
        assert response_info.value.ok, response_info.value.text()
        assert len(sent) == 1 and "manner" not in sent[0] and sent[0]["style_name"] == chosen
        expect(page.locator("#stylized-image")).to_be_visible()
        expect(page.locator("#answered")).to_contain_text("adain v2")
        assert errors.messages == []
    finally:
        page.context.close()


def test_a_service_that_cannot_run_nst_shows_the_finest_mode_disabled_with_the_reason(
    browser: Browser, server_without_matching: LiveServer, photo: Path
) -> None:
    """method=nst would only earn a 422 there: GET /styles says so, and the page offers only the fast mode."""
    nst = httpx.get(f"{server_without_matching.url}/styles", timeout=30).json()["nst"]
    assert (nst["available"], nst["reason"]) == (
        False,
        "method=nst needs torch (NST needs autograd); this service runs style_backend=openvino without it",
    )
    page = open_page(browser, server_without_matching)
    try:
        errors = PageErrors.watch(page)
        upload_photo(page, photo)
        gallery_radios(page)
        expect(page.locator("#mode-fieldset")).to_be_visible()
        finest = page.locator("#method-nst")
        expect(finest).to_be_disabled()
        expect(finest).to_have_accessible_description(
            "Finest is not offered here: NST needs torch, which this service does not run."
        )
        expect(page.locator("#nst-unavailable")).to_be_visible()
        expect(page.locator("input[name=method][value=adain]")).to_be_checked()
        page.locator("label:has(#method-nst)").click(force=True)  # a click on the disabled option changes nothing
        expect(page.locator("input[name=method][value=adain]")).to_be_checked()
        expect(page.locator("#budget-field")).to_be_hidden()
        expect(page.locator("#alpha")).to_be_visible()
        sent = record_form_fields(page, "**/stylize")
        with page.expect_response("**/stylize") as response_info:
            page.locator("#stylize-button").click()
        assert response_info.value.ok, response_info.value.text()
        assert len(sent) == 1 and "method" not in sent[0] and "max_seconds" not in sent[0]
        screenshot(page, "nst-unavailable")
        assert errors.messages == []
    finally:
        page.context.close()


class HeldRequests:
    """Requests to one route, held until the test answers them: a slow service, answering on cue."""

    def __init__(self, page: Page, url_pattern: str) -> None:
        self.page = page
        self.routes: list[Route] = []
        page.route(url_pattern, self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def wait_for(self, count: int) -> list[Route]:
        for _ in range(WAIT_MS // 50):
            if len(self.routes) >= count:
                return self.routes
            self.page.wait_for_timeout(50)
        pytest.fail(f"{count} request(s) expected, {len(self.routes)} arrived")


def painted_png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A stand-in for a /stylize answer: a plain PNG, told apart from another by its colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def answer_painting(route: Route, png: bytes) -> None:
    headers = {"Content-Type": "image/png", "X-Model-Name": "adain", "X-Model-Version": "v-test"}
    route.fulfill(status=200, headers=headers, body=png)


def test_stylize_messages_appear_beside_the_stylize_button_not_at_the_top(
    browser: Browser, live_server: LiveServer, photo: Path
) -> None:
    """At 1280×800 the page-top alert is far above the button: what the button causes is said beside it."""
    page = open_page(browser, live_server, width=1280, height=800)
    try:
        page.goto("/")
        gallery_radios(page)
        page.locator("#stylize-button").click()
        alert = page.get_by_role("alert")
        expect(alert).to_have_text("Choose a photo first (step 1).")
        expect(alert).to_be_in_viewport(ratio=1)

        held = HeldRequests(page, "**/stylize")
        upload_photo(page, photo)
        page.locator("#stylize-button").click()
        progress = page.get_by_role("status").filter(has_text="Painting")
        expect(progress).to_have_text("Painting… this can take a few seconds.")
        expect(progress).to_be_in_viewport(ratio=1)
        expect(page.locator("#stylize-button")).to_have_attribute("aria-disabled", "true")
        screenshot(page, "stylize-painting", full_page=False)

        body = json.dumps({"detail": "the style model crashed"})
        held.wait_for(1)[0].fulfill(status=502, headers={"Content-Type": "application/json"}, body=body)
        expect(alert).to_contain_text("Stylizing failed (502): the style model crashed.")
        expect(alert).to_be_in_viewport(ratio=1)
        expect(progress).to_have_count(0)
        expect(page.locator("#stylize-button")).not_to_have_attribute("aria-disabled", "true")
        screenshot(page, "stylize-error-beside-button", full_page=False)
    finally:
        page.context.close()


def test_a_late_answer_is_shown_with_the_photo_it_was_painted_from(page: Page, photo: Path, large_photo: Path) -> None:
    """Stylize photo A, choose photo B while it paints: the answer still pairs A with A's painting."""
    held = HeldRequests(page, "**/stylize")
    upload_photo(page, photo)
    chosen = gallery_radios(page)[0]
    page.locator("#stylize-button").click()
    held.wait_for(1)
    page.set_input_files("#photo-input", str(large_photo))
    expect(page.locator("#faces-summary")).to_have_text(FACES_SUMMARY)
    # still painting A: the click starts nothing (force: Playwright will not click an aria-disabled button)
    page.locator("#stylize-button").click(force=True)
    expect(page.get_by_role("status").filter(has_text="Painting")).to_be_visible()
    assert len(held.routes) == 1

    painting_of_a = painted_png((200, 30, 30))
    answer_painting(held.routes[0], painting_of_a)
    original, stylized = page.locator("#original-image"), page.locator("#stylized-image")
    expect(stylized).to_be_visible()
    page.wait_for_function("() => document.querySelector('#original-image').naturalWidth > 0")
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
    assert original.evaluate("img => [img.naturalWidth, img.naturalHeight]") == list(Image.open(photo).size)
    expect(page.locator("#download-link")).to_have_attribute("download", f"portrait-{chosen}.png")
    with page.expect_download() as download_info:
        page.locator("#download-link").click()
    assert Path(download_info.value.path()).read_bytes() == painting_of_a
    screenshot(page, "stylize-late-answer")

    # Stylize again: now B is sent, and its answer replaces A's result.
    page.locator("#stylize-button").click()
    painting_of_b = painted_png((30, 30, 200), size=(100, 75))
    answer_painting(held.wait_for(2)[1], painting_of_b)
    expect(page.locator("#download-link")).to_have_attribute("download", f"large-{chosen}.png")
    page.wait_for_function("() => document.querySelector('#original-image').naturalWidth === 1000")
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth === 100")


def test_a_style_file_the_browser_cannot_show_is_refused_at_once(page: Page, photo: Path, tmp_path: Path) -> None:
    """No broken "Your image" tile left selected, and a message beside the Stylize button straight away."""
    upload_photo(page, photo)
    first = gallery_radios(page)[0]
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("a shopping list, not a painting\n")
    page.locator("#style-input").scroll_into_view_if_needed()
    page.set_input_files("#style-input", str(not_an_image))
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "“notes.jpg” is not an image this browser can show: choose a JPEG, PNG, WebP, BMP or GIF file as your style."
    )
    expect(alert).to_be_in_viewport(ratio=1)
    expect(page.locator("#gallery input[data-upload]")).to_have_count(0)
    expect(page.locator(f"#gallery input[value='{first}']")).to_be_checked()
    screenshot(page, "style-file-refused", full_page=False)

    # A good style image, then a bad one: the good one stays chosen, and is what Stylize sends.
    good = tmp_path / "my-painting.png"
    Image.new("RGB", (80, 60), (20, 120, 60)).save(good)
    page.set_input_files("#style-input", str(good))
    own = page.locator("#gallery input[data-upload]")
    expect(own).to_be_checked()
    expect(alert).to_have_count(0)
    page.set_input_files("#style-input", str(not_an_image))
    expect(alert).to_contain_text("“notes.jpg” is not an image")
    expect(own).to_be_checked()
    assert own.evaluate("input => input.parentElement.querySelector('img').naturalWidth") == 80
    sent = record_form_fields(page, "**/stylize")
    page.locator("#stylize-button").click()
    page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
    assert [fields.get("style") for fields in sent] == ["file:my-painting.png"]


def test_a_photo_error_shows_even_with_the_page_scrolled_past_the_alert(
    browser: Browser, live_server: LiveServer, photo: Path, tmp_path: Path
) -> None:
    """The page's alert stays at the top of the window: a second photo is chosen with the page scrolled down."""
    page = open_page(browser, live_server, width=1280, height=800)
    try:
        upload_photo(page, photo)
        page.locator("#photo-input").evaluate("input => input.scrollIntoView({ block: 'start' })")
        alert = page.locator("#alert")
        assert page.evaluate("() => window.scrollY") > 0
        fake = tmp_path / "holiday.jpg"
        fake.write_bytes(b"not a photo either\n")
        page.set_input_files("#photo-input", str(fake))
        expect(alert).to_contain_text("Classifying the photo failed (415)")
        expect(alert).to_be_in_viewport(ratio=1)
        expect(page.locator("#faces-summary")).to_have_text("This photo could not be classified.")
        screenshot(page, "photo-error-scrolled", full_page=False)
    finally:
        page.context.close()
