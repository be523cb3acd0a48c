"""The demo page as a screen reader, a keyboard and a phone meet it: headless Chromium against the real server.

axe-core (WCAG 2.1 A and AA rules) checks the page in its main states; it comes from the ``axe-playwright-python``
dev dependency, never from the network, and its test skips without it. The rest reads Chromium's own accessibility
tree (what a screen reader is given) and the page's layout as the keyboard moves through it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser_support import CHROMIUM, PageErrors, open_page, screenshot
from tests.e2e.test_web_page import HeldRequests, gallery_radios, mocked_faces, painted_png, upload_photo
from tests.support.images import face_like_photo
from tests.support.servers import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
IDENTIFIED = {
    "model": {"name": "face-embedder", "version": "v-test"},
    "faces": [
        {"box": [128, 64, 384, 320], "identity": {"name": "Ada Lovelace", "similarity": 0.91}},
        {"box": [600, 300, 800, 500], "identity": None},
    ],
}


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "portrait.jpg"
    path.write_bytes(face_like_photo(1000, 750))
    return path


@pytest.fixture
def not_a_photo(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jpg"
    path.write_text("a shopping list, not a photo\n")
    return path


def ax_node(page: Page, selector: str) -> dict[str, Any]:
    """Chromium's accessibility node for the element ``selector`` finds: what assistive technology is told."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node_id = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        nodes = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node_id, "fetchRelatives": False})["nodes"]
        node: dict[str, Any] = nodes[0]
        return node
    finally:
        cdp.detach()


def ax_properties(node: dict[str, Any]) -> dict[str, Any]:
    return {prop["name"]: prop["value"].get("value") for prop in node.get("properties", [])}


def test_empty_status_regions_are_in_the_accessibility_tree_before_their_message(page: Page, photo: Path) -> None:
    """A screen reader announces a change inside a live region it already knows; a status region hidden with
    ``display: none`` until its text arrives is not there to be watched, and "Painting…" or "1 face found."
    went unsaid. (An alert is announced as it appears: it may stay hidden while empty.)"""
    page.goto("/")
    gallery_radios(page)
    for selector in ("#status", "#stylize-status"):
        expect(page.locator(selector)).to_be_empty()
        node = ax_node(page, selector)
        assert not node["ignored"], f"{selector} is left out of the accessibility tree: {node.get('ignoredReasons')}"
        assert node["role"]["value"] == "status"
        assert ax_properties(node)["live"] == "polite"
    # ...and an empty one takes no room: the page looks as it did.
    status = page.locator("#status").bounding_box()
    assert status and status["width"] <= 1 and status["height"] <= 1
    page.route("**/classify", lambda route: route.fulfill(json=mocked_faces(([128, 64, 384, 320], "female", 0.9))))
    upload_photo(page, photo)
    expect(page.get_by_role("status").filter(has_text="1 face found.")).to_be_visible()


def test_the_keyboard_focus_is_never_hidden_under_the_error_on_a_phone(
    browser: Browser, live_server: LiveServer, not_a_photo: Path
) -> None:
    """The page's alert stays at the top of the window, five lines tall on a phone: Shift+Tab scrolled each
    control to just below a fixed 5 rem, under the alert, and the focused control could not be seen."""
    page = open_page(browser, live_server, width=375, height=667)
    try:
        page.goto("/")
        gallery_radios(page)
        page.set_input_files("#photo-input", str(not_a_photo))
        alert = page.locator("#alert")
        expect(alert).to_contain_text("Classifying the photo failed (415)")
        assert (alert.bounding_box() or {"height": 0})["height"] > 80, "the alert should take several lines here"
        page.locator("#models-heading ~ details summary").focus()
        covered = []
        for _ in range(8):
            page.keyboard.press("Shift+Tab")
            where = page.evaluate(
                """() => {
                  const focused = document.activeElement;
                  const ring = focused.name === "style" ? focused.parentElement.querySelector(".thumb") : focused;
                  const box = ring.getBoundingClientRect();
                  const alert = document.getElementById("alert").getBoundingClientRect();
                  return { name: focused.id || focused.name, top: box.top, bottom: box.bottom, under: alert.bottom };
                }"""
            )
            if where["top"] < where["under"] and where["bottom"] > 0:
                covered.append(where)
                screenshot(page, "focus-under-alert", full_page=False)
        assert covered == [], "focused controls hidden (partly or wholly) under the page's alert"
    finally:
        page.context.close()


def test_each_gallery_style_tells_a_screen_reader_what_it_looks_like(page: Page) -> None:
    """The thumbnails are decorative (alt=""); each painting's description was only a mouse-hover tooltip on the
    label, so neither a screen reader nor a keyboard got it: the radio button now carries it as its description."""
    page.goto("/")
    gallery_radios(page)
    starry = page.locator("#gallery input[value='starry-night']")
    expect(starry).to_have_accessible_name(re.compile(r"^The Starry Night\s+Vincent van Gogh, 1889$"))
    description = page.locator("#gallery label:has(input[value='starry-night'])").get_attribute("title") or ""
    described = description.split(" — ")[-1]
    assert described and described != "The Starry Night"
    expect(starry).to_have_accessible_description(described)
    for i in range(page.locator("#gallery input[name=style]").count()):
        expect(page.locator("#gallery input[name=style]").nth(i)).to_have_accessible_description(re.compile(r"\w"))


def test_the_chosen_paintings_description_is_shown_to_sighted_users_too(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    """The description was a screen reader's (the radio's description) or a mouse's (the tooltip) alone: a keyboard
    or phone user who sees the page never read it. The chosen painting's now shows under the gallery."""
    page = open_page(browser, live_server, width=375, height=740)
    try:
        page.goto("/")
        gallery_radios(page)
        about = page.locator("#style-about")
        starry = page.locator("#gallery label:has(input[value='starry-night'])")
        description = (starry.get_attribute("title") or "").split(" — ")[-1]
        starry.click()
        expect(about).to_be_visible()
        expect(about).to_have_text(f"The Starry Night, Vincent van Gogh, 1889: {description}")
        assert about.get_attribute("aria-live") is None and ax_node(page, "#style-about")["role"]["value"] != "status"
        page.locator("#gallery input[value='starry-night']").focus()
        page.keyboard.press("ArrowRight")  # the keyboard moves the choice: the description follows it
        after = page.evaluate("() => document.activeElement.parentElement.title").split(" — ")
        expect(about).to_have_text(re.compile(rf"^{re.escape(after[0])}.*: {re.escape(after[-1])}$"))
        about.scroll_into_view_if_needed()
        screenshot(page, "style-about-phone", full_page=False)
        own = tmp_path / "my-painting.png"
        own.write_bytes(face_like_photo(64, 48, fmt="PNG"))
        page.set_input_files("#style-input", str(own))
        expect(about).to_have_text("Your image: “my-painting.png”.")
    finally:
        page.context.close()


def test_a_slider_change_is_announced_once_by_the_slider_not_again_by_its_readout(page: Page) -> None:
    """An <output> is a live region (role status): each step of the alpha or manner slider was announced by the
    slider, with its new value, then again by its readout. The readouts are hidden from assistive technology,
    and the slider still tells its value."""
    page.goto("/")
    gallery_radios(page)
    expect(page.locator("#manner-field")).to_be_visible()  # the stable style model takes manner
    for slider, readout in (("#alpha", "#alpha-value"), ("#manner", "#manner-value")):
        page.locator(slider).fill("0.35")
        expect(page.locator(readout)).to_have_text("0.35")  # still shown on screen
        node = ax_node(page, readout)
        assert node["ignored"], f"{readout} is still in the accessibility tree, announced beside the slider"
        assert float(ax_node(page, slider)["value"]["value"]) == pytest.approx(0.35)  # the one announcement


def test_the_stylized_photo_says_which_photo_and_which_style_it_shows(page: Page, photo: Path) -> None:
    """Its alt text was "The stylized photo" whatever was painted: a screen reader could not tell the style, nor,
    with a late answer, which photo it was."""
    page.route("**/classify", lambda route: route.fulfill(json=mocked_faces()))
    upload_photo(page, photo)
    gallery_radios(page)
    page.locator("#gallery label:has(input[value='great-wave'])").click()
    page.locator("#stylize-button").click()
    stylized = page.locator("#stylized-image")
    expect(stylized).to_be_visible()
    expect(stylized).to_have_accessible_name("“portrait.jpg” repainted in the style of The Great Wave off Kanagawa")
    expect(page.locator("#original-image")).to_have_accessible_name("The original photo, “portrait.jpg”")
    expect(page.get_by_role("status").filter(has_text="Stylized")).to_have_text("Stylized: see “Your stylized photo”.")


def test_the_api_key_field_is_described_by_its_hint(page: Page) -> None:
    """ "It is kept in this tab only" sat beside the field, tied to nothing: a screen reader heard "API key" alone."""
    page.route("**/classify", lambda route: route.fulfill(status=401, json={"detail": "an API key is required"}))
    page.goto("/")
    page.locator("#photo-input").set_input_files(str(Path(__file__)))  # any file: the route refuses it
    key = page.get_by_label("API key")
    expect(key).to_be_focused()
    expect(key).to_have_accessible_description(re.compile(r"It is kept in this tab only\.$"))


# ---- axe-core: WCAG 2.1 A and AA, in the page's main states ----


def axe_violations(page: Page) -> dict[str, list[str]]:
    """axe's WCAG 2.1 A/AA violations on the page as it stands: rule id -> the elements that break it."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python is absent")
    options = {"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}
    results = axe.Axe().run(page, options=options).response
    assert results["testEngine"]["name"] == "axe-core"
    return {rule["id"]: [" ".join(node["target"]) for node in rule["nodes"]] for rule in results["violations"]}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 375])
def test_axe_finds_no_wcag_violation_in_the_pages_main_states(
    browser: Browser, live_server: LiveServer, photo: Path, not_a_photo: Path, scheme: str, width: int
) -> None:
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is absent")
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        errors = PageErrors.watch(page)
        page.route("**/classify", lambda route: route.fulfill(json=mocked_faces(([128, 64, 384, 320], "male", 0.8))))
        page.route("**/identify", lambda route: route.fulfill(json=IDENTIFIED))
        found: dict[str, dict[str, list[str]]] = {}
        page.goto("/")
        gallery_radios(page)
        found["empty"] = axe_violations(page)

        upload_photo(page, photo)
        expect(page.locator("#face-boxes .face-box")).to_have_count(1)
        found["detections"] = axe_violations(page)

        page.set_input_files("#identify-input", str(photo))
        expect(page.locator("#identify-summary")).to_have_text("2 faces found, 1 named.")
        found["identify"] = axe_violations(page)

        page.locator("#stylize-button").click()
        expect(page.locator("#stylized-image")).to_be_visible()
        page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth > 0")
        page.locator("#models-heading ~ details summary").click()
        expect(page.locator("#models-table tr").first).to_be_attached()
        found["stylized"] = axe_violations(page)

        # the finest mode (NST): chosen, painting (held, so axe sees it mid-way), and its result with its steps
        page.locator("label:has(#method-nst)").click()
        expect(page.locator("#budget-field")).to_be_visible()
        found["nst chosen"] = axe_violations(page)
        held = HeldRequests(page, "**/stylize")
        page.locator("#stylize-button").click()
        expect(page.get_by_role("timer")).to_be_visible()
        found["nst painting"] = axe_violations(page)
        headers = {"Content-Type": "image/png", "X-Model-Name": "adain", "X-Model-Version": "v-test"}
        held.wait_for(1)[0].fulfill(status=200, headers=headers | {"X-NST-Steps": "42"}, body=painted_png((9, 9, 9)))
        expect(page.locator("#stylized-note")).to_contain_text("42 optimisation steps")
        page.wait_for_function("() => document.querySelector('#stylized-image').naturalWidth === 64")
        found["nst result"] = axe_violations(page)
        page.unroute("**/stylize")

        page.unroute("**/classify")
        page.set_input_files("#photo-input", str(not_a_photo))
        expect(page.locator("#alert")).to_contain_text("415")
        expect(page.locator("#faces-summary")).to_have_text("This photo could not be classified.")
        found["error"] = axe_violations(page)
        assert {state: rules for state, rules in found.items() if rules} == {}
        # the photo's 415 is logged as a failed load; anything else (a Content-Security-Policy violation) is not
        assert [message for message in errors.messages if "Failed to load resource" not in message] == []
    finally:
        context.close()
