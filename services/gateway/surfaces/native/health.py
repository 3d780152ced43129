"""Liveness and readiness: is the process up, and can it reach Mongo (S3 and RabbitMQ are reported beside)."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.readiness import check_backends
from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.problems import problem_response
from shared.errors import AppError, Unavailable

resource = Resource("health")


class Health(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]
    checks: dict[str, str]


@resource.endpoint("GET", "/healthz", summary="The process answers", answer=Health, public=True)
async def healthz(request: Request) -> Health:
    """The process answers."""
    return Health(status="ok")


@resource.endpoint(
    "GET",
    "/readyz",
    summary="Mongo answers (and setup is done); S3 and RabbitMQ are reported, not required",
    answer=Ready,
    errors=(503,),
    public=True,
)
async def readyz(request: Request) -> Ready | Response:
    """Ready when Mongo answers and setup is done, whatever S3 and RabbitMQ say; their checks are in the answer."""
    d = deps(request)
    readiness = await check_backends(stores=d.stores, storage=d.storage, broker=d.broker)
    detail = f"not ready: {', '.join(readiness.blocking)}"
    if readiness.ready and not d.setup_done:
        try:
            await d.finish_setup()
        except AppError as exc:  # S3 down while the bucket is still to be created, say
            detail = f"not ready: setup not finished ({exc.detail})"
    if not readiness.ready or not d.setup_done:
        kind, title, headers = Unavailable.kind, Unavailable.title, {"Retry-After": "5"}
        return problem_response(request, 503, detail, kind=kind, title=title, headers=headers, checks=readiness.checks)
    return Ready(status="ready", checks=readiness.checks)
