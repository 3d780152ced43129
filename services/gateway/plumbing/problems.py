"""RFC 9457 problem details: the one place where errors become HTTP responses.

Every problem's ``type`` is ``urn:quern:problem:<kind>``, one stable kind per error class
(``shared/errors.py``) plus Starlette's wrong-method error; docs/problems.md lists them all,
and a test holds that list to ``problem_types()``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from pydantic import ConfigDict, Field, JsonValue
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.gateway.plumbing.answers import Out
from shared.errors import (
    AppError,
    BadCredentials,
    BadRequest,
    BatchSizeQuota,
    Busy,
    Conflict,
    Duplicate,
    EventStreamsQuota,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    NotYet,
    OverQuota,
    PendingUploadsQuota,
    QueuedJobsQuota,
    StoredBytesQuota,
    TooLarge,
    TooManyLogins,
    Unauthorized,
    Unavailable,
)

log = structlog.get_logger()


TYPE_PREFIX = "urn:quern:problem:"
# RFC 9457's type for a problem with no more meaning than its status; no answer of ours should need it.
BLANK = "about:blank"
STATUS: dict[type[AppError], int] = {
    AppError: 500,
    BadRequest: 400,
    Unauthorized: 401,
    BadCredentials: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Duplicate: 409,
    NotYet: 409,
    Gone: 410,
    TooLarge: 413,
    StoredBytesQuota: 413,
    BatchSizeQuota: 413,
    Invalid: 422,
    OverQuota: 429,
    QueuedJobsQuota: 429,
    PendingUploadsQuota: 429,
    EventStreamsQuota: 429,
    TooManyLogins: 429,
    Unavailable: 503,
    Busy: 503,
}
# Starlette's own routing errors: an unknown path is a NotFound like any other; a wrong method has a kind of its own.
ROUTING: dict[int, tuple[str, str]] = {
    404: (NotFound.kind, NotFound.title),
    405: ("method-not-allowed", "Method not allowed"),
}


class ProblemResponse(JSONResponse):
    """A JSON body with the problem+json media type."""

    media_type = "application/problem+json"


def type_uri(kind: str) -> str:
    """The problem type URI of ``kind``."""
    return TYPE_PREFIX + kind


def problem_types() -> dict[str, int]:
    """Every problem type URI the gateway answers with, and its status."""
    types = {type_uri(cls.kind): status for cls, status in STATUS.items()}
    return types | {type_uri(kind): status for status, (kind, _) in ROUTING.items()}


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str,
    title: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Build the problem document of ``kind`` with its type URI, title, status, detail and instance."""
    body = {
        "type": BLANK if kind == BLANK else type_uri(kind),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def status_of(exc: AppError) -> int:
    """The HTTP status of an error, found along its class hierarchy."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def render(request: Request, exc: AppError) -> ProblemResponse:
    """The problem document of an AppError, with Retry-After and WWW-Authenticate where they apply."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Invalid):
        extra["errors"] = [{"pointer": v.pointer, "detail": v.detail} for v in exc.violations]
    if isinstance(exc, NotYet | OverQuota | Unavailable | TooManyLogins):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="quern"'
    if status >= 500:
        log.warning("dependency_unavailable", detail=exc.detail, cause=repr(exc.__cause__))
    return problem_response(request, status, exc.detail, kind=exc.kind, title=exc.title, headers=headers, **extra)


def internal_error(request: Request, detail: str) -> ProblemResponse:
    """The 500 problem for a failure nothing else handled."""
    return problem_response(request, 500, detail, kind=AppError.kind, title=AppError.title)


async def app_error(request: Request, exc: Exception) -> ProblemResponse:
    """Render any AppError; Starlette finds this handler along the exception's MRO."""
    assert isinstance(exc, AppError)
    return render(request, exc)


async def http_error(request: Request, exc: Exception) -> ProblemResponse:
    """Render Starlette's own HTTP errors (unknown route, wrong method) as problems too."""
    assert isinstance(exc, HTTPException)
    kind, title = ROUTING.get(exc.status_code, (BLANK, HTTPStatus(exc.status_code).phrase))
    headers = dict(exc.headers or {})
    return problem_response(request, exc.status_code, exc.detail, kind=kind, title=title, headers=headers)


class ProblemError(Out):
    pointer: str = Field(description="JSON pointer into the request body")
    detail: str


# Every type URI an answer may carry; the suite's schemathesis run checks each real answer against it.
PROBLEM_TYPES: list[JsonValue] = [*problem_types(), BLANK]


class Problem(Out):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(
        description=f"A stable URI per kind of problem, each explained in docs/problems.md; {BLANK} only for an "
        "HTTP error with no kind of its own",
        json_schema_extra={"enum": PROBLEM_TYPES},
    )
    title: str
    status: int
    detail: str
    instance: str
    errors: list[ProblemError] | None = None
