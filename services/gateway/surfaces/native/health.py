"""Liveness and readiness: is the process up, and can it reach Mongo, S3 and RabbitMQ."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.readiness import check_backends
from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.problems import problem_response
from shared.errors import Unavailable

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
    "GET", "/readyz", summary="Mongo, S3 and RabbitMQ all answer", answer=Ready, errors=(503,), public=True
)
async def readyz(request: Request) -> Ready | Response:
    """Ready only when every backend answers; 503 problem naming the ones that do not."""
    d = deps(request)
    readiness = await check_backends(stores=d.stores, storage=d.storage, broker=d.broker)
    if not readiness.ready:
        detail, headers = f"not ready: {', '.join(readiness.failing)}", {"Retry-After": "5"}
        kind, title = Unavailable.kind, Unavailable.title
        return problem_response(request, 503, detail, kind=kind, title=title, headers=headers, checks=readiness.checks)
    if not d.setup_done:
        await d.finish_setup()
    return Ready(status="ready", checks=readiness.checks)
