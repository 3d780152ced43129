from __future__ import annotations

import pytest
from starlette.requests import Request

from services.gateway.domain.archives import selection_digest
from services.gateway.surfaces.native.job_results import include_globs
from shared.errors import Invalid


def request_with(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []})


def test_globs_are_sorted_and_deduplicated() -> None:
    assert include_globs(request_with("include=b*&include=a*&include=b*")) == ["a*", "b*"]


def test_no_include_is_the_full_archive() -> None:
    assert include_globs(request_with("redirect=1")) == []


def test_the_digest_ignores_order_and_repeats() -> None:
    assert selection_digest(["b*", "a*", "b*"]) == selection_digest(["a*", "b*"]) != selection_digest(["a*"])


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("&".join(f"include={n}" for n in range(21)), "/include"),
        ("include=", "/include/0"),
        ("include=" + "x" * 201, "/include/0"),
    ],
)
def test_too_many_empty_or_long_globs_are_invalid(query: str, pointer: str) -> None:
    with pytest.raises(Invalid) as caught:
        include_globs(request_with(query))
    assert caught.value.violations[0].pointer == pointer
