"""How the TES surface answers errors: RFC 9457 problems as everywhere, but a broken rule is 400, as TES clients expect.

The native API answers a request that breaks a rule with 422 (``invalid``); TES knows only 400,
so here the same violations come as a ``bad-request`` problem, still listing each with its pointer.
"""

from __future__ import annotations

from starlette.requests import Request

from services.gateway.plumbing.problems import ProblemResponse, problem_response, render
from shared.errors import AppError, BadRequest, Invalid


def render_tes(request: Request, exc: AppError) -> ProblemResponse:
    """The problem document of an error raised under /ga4gh/tes/v1."""
    if isinstance(exc, Invalid):
        errors = [{"pointer": v.pointer, "detail": v.detail} for v in exc.violations]
        detail = exc.detail
        if exc.violations and exc.violations[0].detail not in detail:
            detail += f" ({exc.violations[0].pointer or '/'}: {exc.violations[0].detail})"
        return problem_response(request, 400, detail, kind=BadRequest.kind, title=BadRequest.title, errors=errors)
    return render(request, exc)


async def tes_error(request: Request, exc: Exception) -> ProblemResponse:
    """Render any AppError raised by a TES endpoint."""
    assert isinstance(exc, AppError)
    return render_tes(request, exc)
