"""The SDK's error classes: each problem kind the gateway documents maps to its own, the rest by status."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from quern import errors
from quern.errors import (
    ApiError,
    BadCredentials,
    Conflict,
    Duplicate,
    Gone,
    InternalError,
    NotFound,
    NotYet,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_class,
)

PROBLEMS = Path(__file__).resolve().parents[3] / "docs/problems.md"
DOCUMENTED = re.findall(r"^\| `urn:quern:problem:([a-z-]+)` \| (\d{3}) \|", PROBLEMS.read_text(), re.MULTILINE)


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://quern.test/v1/jobs/j1")
    if body is None:
        return httpx.Response(status, text="<html>bad gateway</html>", headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_the_documented_kinds_are_all_read() -> None:
    assert len(DOCUMENTED) == 22, DOCUMENTED  # the table of docs/problems.md


@pytest.mark.parametrize(("kind", "status"), DOCUMENTED)
def test_every_documented_kind_has_a_class_of_its_own_under_its_status_class(kind: str, status: str) -> None:
    chosen = error_class(int(status), f"urn:quern:problem:{kind}")
    assert chosen.kind == kind
    assert issubclass(chosen, errors.BY_STATUS[int(status)])
    assert chosen.__module__ == "quern.errors" and chosen.__name__ in dir(errors)


def test_a_subkind_is_caught_as_its_parent() -> None:
    assert issubclass(NotYet, Conflict) and issubclass(Duplicate, Conflict) and issubclass(Conflict, ApiError)
    assert issubclass(BadCredentials, Unauthorized)


def test_an_answer_becomes_its_kinds_class_keeping_every_field_of_the_problem() -> None:
    problem = {
        "type": "urn:quern:problem:not-yet",
        "title": "Not yet",
        "status": 409,
        "detail": "job j1 has no archive yet",
        "instance": "/v1/jobs/j1/archive",
    }
    error = ApiError.from_response(answer(409, problem, **{"Retry-After": "3"}))
    assert type(error) is NotYet
    assert (error.status, error.type, error.title, error.detail) == (409, problem["type"], "Not yet", problem["detail"])
    assert (error.instance, error.errors, error.retry_after, error.problem) == (problem["instance"], [], 3.0, problem)
    assert str(error) == "409 Not yet: job j1 has no archive yet"


@pytest.mark.parametrize(
    ("status", "problem_type", "expected"),
    [
        (503, "urn:quern:problem:draining", Unavailable),  # a kind this SDK does not know yet: by its status
        (404, "about:blank", NotFound),
        (401, "https://proxy.example/problems/login", Unauthorized),
        (409, None, Conflict),
        (410, "urn:quern:problem:gone", Gone),
        (429, None, TooManyRequests),
        (500, "urn:quern:problem:internal-error", InternalError),
        (418, "urn:quern:problem:teapot", ApiError),  # no class for the status either
        (502, None, ApiError),
    ],
)
def test_an_unknown_kind_falls_back_on_its_status(status: int, problem_type: str | None, expected: type) -> None:
    assert error_class(status, problem_type) is expected


def test_an_answer_that_is_no_problem_document_falls_back_on_its_status_with_the_text_as_detail() -> None:
    error = ApiError.from_response(answer(503))
    assert type(error) is Unavailable and error.type == "about:blank"
    assert error.detail == "<html>bad gateway</html>" and error.title == "Service Unavailable"
    assert type(ApiError.from_response(answer(502))) is ApiError
