"""Liveness and readiness: is the process up, and can it reach Mongo, S3 and RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.problems import problem_response
from services.gateway.surfaces.native.schemas import Health, Ready
from shared.errors import AppError, Unavailable

resource = Resource("health")
CHECK_TIMEOUT_SECONDS = 3.0


@resource.endpoint("GET", "/healthz", summary="The process answers", answer=Health, public=True)
async def healthz(request: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except (AppError, TimeoutError) as exc:
        return f"unavailable: {exc}" if str(exc) else "unavailable: no answer in time"
    return "ok"


@resource.endpoint(
    "GET", "/readyz", summary="Mongo, S3 and RabbitMQ all answer", answer=Ready, errors=(503,), public=True
)
async def readyz(request: Request) -> Response:
    """Ready only when every backend answers; 503 problem naming the ones that do not."""
    d = deps(request)
    names = ("mongo", "s3", "rabbitmq")
    results = await asyncio.gather(
        _check(d.stores.ping()), _check(run_in_threadpool(d.storage.ping)), _check(run_in_threadpool(d.broker.ping))
    )
    checks = dict(zip(names, results, strict=True))
    if all(result == "ok" for result in results):
        if not d.setup_done:
            await d.finish_setup()
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, result in checks.items() if result != "ok")
    detail, headers = f"not ready: {failing}", {"Retry-After": "5"}
    kind, title = Unavailable.kind, Unavailable.title
    return problem_response(request, 503, detail, kind=kind, title=title, headers=headers, checks=checks)
