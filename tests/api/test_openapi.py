"""The OpenAPI document and its docs page, served by the in-process gateway without credentials."""

from __future__ import annotations

import re

import httpx2


def test_the_document_is_openapi_3_1_and_docs_are_served(anonymous: httpx2.Client) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/jobs/{job_id}/archive" in document["paths"]
    page = anonymous.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_the_docs_page_loads_its_files_from_the_gateway_without_credentials(anonymous: httpx2.Client) -> None:
    page = anonymous.get("/docs")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(loaded) == 3 and all(url.startswith("/docs/assets/") for url in loaded)
    for url in loaded:
        assert anonymous.get(url).status_code == 200, url
