"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = structlog.get_logger()

STATUS: dict[type[AppError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
    Unavailable: 503,
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid request",
    500: "Internal error",
    503: "Service unavailable",
}


class ProblemResponse(JSONResponse):
    """A JSON body with the problem+json media type."""

    media_type = "application/problem+json"


def problem_response(
    request: Request, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemResponse:
    """Build the problem document for ``status`` with a type URI, title, detail and instance."""
    title = TITLES.get(status, "Error")
    body = {
        "type": f"urn:quern:problem:{title.lower().replace(' ', '-')}",
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


async def app_error(request: Request, exc: Exception) -> Response:
    """Render any AppError; Starlette finds this handler along the exception's MRO."""
    assert isinstance(exc, AppError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Invalid):
        extra["errors"] = [{"pointer": v.pointer, "detail": v.detail} for v in exc.violations]
    if isinstance(exc, Conflict | Unavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="quern"'
    if status >= 500:
        log.warning("dependency_unavailable", detail=exc.detail, cause=repr(exc.__cause__))
    return problem_response(request, status, exc.detail, headers=headers, **extra)


async def http_error(request: Request, exc: Exception) -> Response:
    """Render Starlette's own HTTP errors (unknown route, wrong method) as problems too."""
    assert isinstance(exc, HTTPException)
    return problem_response(request, exc.status_code, exc.detail, headers=dict(exc.headers or {}))
