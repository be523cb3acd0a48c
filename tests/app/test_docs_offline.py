"""The API reference at /docs in-process: every file it loads comes from the service itself, key or no key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.app_client import fake_app_client
from tests.support.fakes import fake_plans, make_fake_store

KEY = "docs-key-0123456789abcdef"
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class Links(HTMLParser):
    """The ``src`` and ``href`` attributes of a page: what a browser fetches to show it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def links_of(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path) as client:
        yield client


def test_the_docs_page_loads_nothing_from_another_host(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = links_of(page.text)
    assert len(urls) == 3, urls  # style sheet, icon, script
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not on the service's own origin"
    assert "http" not in " ".join(urls) and "cdn" not in page.text.lower()


def test_the_files_the_docs_page_loads_answer_from_the_service_with_their_types(client: TestClient) -> None:
    urls = links_of(client.get("/docs").text)
    assert {Path(url).suffix for url in urls} == set(CONTENT_TYPES)
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
    script = next(url for url in urls if url.endswith(".js"))
    assert b"SwaggerUIBundle" in client.get(script).content
    # Only Swagger UI's files: the package folder they come from also holds Python files.
    assert client.get(f"{Path(script).parent}/__init__.py").status_code == 404


def test_an_unchanged_docs_file_is_revalidated_without_its_body(client: TestClient) -> None:
    css = next(url for url in links_of(client.get("/docs").text) if url.endswith(".css"))
    first = client.get(css)
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(css, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_the_docs_and_their_files_stay_open_and_whole_on_a_keyed_service_with_a_small_body_limit(
    tmp_path: Path,
) -> None:
    with fake_app_client(tmp_path, api_keys=KEY, max_upload_bytes=1024) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        for url in links_of(page.text):  # the script is 1.6 MB: the body limit is for requests only
            answer = client.get(url)
            assert answer.status_code == 200 and len(answer.content) == int(answer.headers["content-length"]), url
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"  # the page's "Authorize"


def test_behind_a_path_prefix_the_docs_page_loads_its_files_and_schema_under_it(tmp_path: Path) -> None:
    store = make_fake_store(tmp_path / "store")
    app = create_app(Settings(store=store.as_uri(), cache_dir=tmp_path / "cache"), fake_plans())  # type: ignore[arg-type]
    with TestClient(app, root_path="/deepcanvas") as client:
        page = client.get("/docs").text
        urls = links_of(page)
        assert urls and all(url.startswith("/deepcanvas/docs/static/") for url in urls), urls
        assert "url: '/deepcanvas/openapi.json'" in page
        for url in urls:
            assert client.get(url).status_code == 200, url


def test_redoc_is_off_as_no_offline_copy_of_it_is_installed(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_the_openapi_description_names_the_detector_the_embedded_store_serves(
    client: TestClient, embedded_store: Path
) -> None:
    stable = json.loads((embedded_store / "face-detector" / "aliases.json").read_text())["stable"]
    manifest = json.loads((embedded_store / "face-detector" / stable / "manifest.json").read_text())
    assert manifest["architecture"] == "ultralight-rfb", "the default detector changed: so must app.main.DESCRIPTION"
    description = client.get("/openapi.json").json()["info"]["description"]
    assert "Ultra-Light RFB face detector" in description and "YOLO" not in description
