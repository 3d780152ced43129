"""The docs page works offline and under a strict CSP: every file it loads comes from the gateway itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from services.gateway.plumbing.openapi import document_routes

DOCUMENT = {"openapi": "3.1.0", "info": {"title": "quern", "version": "1"}, "paths": {}}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Page(HTMLParser):
    """What a page loads (every src and href), and whatever it would run or style inline."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.spec = ""
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href")]
        self.inline += [f"{tag} {name}" for name, _ in attrs if name == "style" or name.startswith("on")]
        self.spec = found.get("data-spec") or self.spec
        self._in_script = tag == "script"
        if tag == "script" and not found.get("src"):
            self.inline.append("script without src")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"script text {data.strip()[:40]!r}")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


@pytest.fixture(params=["", "/ga4gh/tes/v1"], ids=["root", "under-a-prefix"])
def at(request: pytest.FixtureRequest) -> str:
    """Where a surface's document routes are: the root (the native API), or a prefix (as another surface's would be)."""
    return str(request.param)


@pytest.fixture
def client(at: str) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=document_routes(DOCUMENT, at=at))) as client:
        yield client


def docs(client: TestClient, at: str) -> Page:
    response = client.get(f"{at}/docs")
    assert response.status_code == 200
    return Page(response.text)


def test_the_docs_page_loads_only_urls_of_its_own_origin(client: TestClient, at: str) -> None:
    page = docs(client, at)
    assert len(page.urls) == 3  # the stylesheet, Swagger UI, and the script that starts it
    for url in page.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        assert parts.path.startswith(f"{at}/docs/assets/"), url


def test_the_docs_page_runs_and_styles_nothing_inline(client: TestClient, at: str) -> None:
    assert docs(client, at).inline == []


def test_every_file_the_docs_page_loads_answers_with_its_type_and_a_year_of_caching(
    client: TestClient, at: str
) -> None:
    for url in docs(client, at).urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == TYPES[re.sub(r".*(\.\w+)$", r"\1", urlsplit(url).path)], url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 100, url


def test_the_docs_page_names_the_document_its_surface_serves(client: TestClient, at: str) -> None:
    page = docs(client, at)
    assert page.spec == f"{at}/openapi.json"
    assert client.get(page.spec).json() == DOCUMENT


def test_the_docs_page_csp_allows_scripts_and_styles_from_its_own_origin_only(client: TestClient, at: str) -> None:
    policy = client.get(f"{at}/docs").headers["content-security-policy"]
    directives = {name: values for name, *values in (part.split() for part in policy.split(";"))}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert all(value in ("'self'", "'none'", "data:", "blob:") for values in directives.values() for value in values)


def test_the_stylesheet_fetches_nothing_itself(client: TestClient, at: str) -> None:
    css = next(url for url in docs(client, at).urls if ".css" in url)
    text = client.get(css).text
    assert "@import" not in text
    assert "@font-face" not in text
    fetched = re.findall(r"url\(\s*['\"]?([^'\")]*)", text)
    assert fetched and all(url.startswith("data:") for url in fetched)
