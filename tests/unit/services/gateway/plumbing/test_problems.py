"""Problem types: one stable, documented type URI per kind of error, and every answer carries its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from services.gateway.plumbing import problems
from services.gateway.plumbing.problems import (
    BLANK,
    PROBLEM_TYPES,
    STATUS,
    app_error,
    http_error,
    problem_types,
    type_uri,
)
from shared import errors
from shared.errors import AppError, Invalid, NotYet, Violation

ERROR_CLASSES = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, AppError)]


def documented(project: Path) -> dict[str, tuple[int, str]]:
    """The docs' table: type URI -> (status, title)."""
    rows = re.findall(
        r"^\| `(urn:quern:problem:[a-z-]+)` \| (\d{3}) \| ([^|]+?) \|", (project / "docs/problems.md").read_text(), re.M
    )
    return {uri: (int(status), title) for uri, status, title in rows}


def test_every_error_class_has_a_kind_and_title_of_its_own_and_a_status() -> None:
    kinds = [cls.__dict__.get("kind") for cls in ERROR_CLASSES]
    assert None not in kinds and len(set(kinds)) == len(kinds)
    assert all("title" in cls.__dict__ for cls in ERROR_CLASSES)
    assert set(ERROR_CLASSES) == set(STATUS)


def test_the_docs_list_exactly_the_problem_types_the_code_answers_with(project: Path) -> None:
    table = documented(project)
    assert {uri: status for uri, (status, _) in table.items()} == problem_types()
    titles = {type_uri(cls.kind): cls.title for cls in ERROR_CLASSES} | {
        type_uri(kind): title for kind, title in problems.ROUTING.values()
    }
    assert {uri: title for uri, (_, title) in table.items()} == titles
    assert BLANK in (project / "docs/problems.md").read_text()


def test_the_openapi_problem_schema_enumerates_every_type() -> None:
    assert set(PROBLEM_TYPES) == set(problem_types()) | {BLANK}


def test_the_readme_links_the_problem_types(project: Path) -> None:
    assert "(docs/problems.md)" in (project / "README.md").read_text()


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_is_answered_with_its_own_type_title_and_status(cls: type[AppError]) -> None:
    async def fail(request: Request) -> Response:
        raise cls()

    app = Starlette(routes=[Route("/fail", fail)], exception_handlers={AppError: app_error})
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/fail")
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert (body["type"], body["title"], body["status"]) == (type_uri(cls.kind), cls.title, STATUS[cls])
    assert response.status_code == STATUS[cls] and body["detail"] and body["instance"] == "/fail"


def test_not_yet_carries_retry_after_and_invalid_its_violations() -> None:
    async def later(request: Request) -> Response:
        raise NotYet("packaging", retry_after=7)

    async def bad(request: Request) -> Response:
        raise Invalid("no", [Violation("/a", "too big")])

    app = Starlette(routes=[Route("/later", later), Route("/bad", bad)], exception_handlers={AppError: app_error})
    with TestClient(app) as client:
        later_answer, bad_answer = client.get("/later"), client.get("/bad")
    assert later_answer.headers["retry-after"] == "7"
    assert later_answer.json()["type"] == "urn:quern:problem:not-yet"
    assert bad_answer.json()["errors"] == [{"pointer": "/a", "detail": "too big"}]


def test_unknown_route_and_wrong_method_have_stable_types() -> None:
    async def ok(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/only-get", ok)], exception_handlers={HTTPException: http_error})
    with TestClient(app) as client:
        missing, wrong = client.get("/nowhere"), client.post("/only-get")
    assert (missing.status_code, missing.json()["type"]) == (404, "urn:quern:problem:not-found")
    assert (wrong.status_code, wrong.json()["type"]) == (405, "urn:quern:problem:method-not-allowed")
    assert wrong.json()["title"] == "Method not allowed" and "GET" in wrong.headers["allow"]
