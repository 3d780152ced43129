"""Liveness and readiness: is the process up, and can it reach Mongo, S3 and RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.problems import problem_response
from services.gateway.registrations import register_directory
from services.gateway.state import Deps, deps
from services.gateway.users import ensure_admin
from shared.errors import AppError, Unavailable

log = structlog.get_logger()
CHECK_TIMEOUT_SECONDS = 3.0


async def finish_setup(d: Deps) -> None:
    """Create the bucket (when configured), the indexes (and migrate), the first admin and the app directory's apps.

    Done once, at start or, if a backend was down then, when ready.
    """
    if d.settings.s3_create_bucket:
        await run_in_threadpool(d.storage.ensure_bucket)
    await d.stores.prepare(event_retention_seconds=d.settings.event_retention_days * 86400)
    if d.settings.admin_username is not None and d.settings.admin_password is not None:
        await ensure_admin(
            accounts=d.stores.accounts,
            username=d.settings.admin_username,
            password=d.settings.admin_password.get_secret_value(),
        )
    await register_directory(apps=d.stores.apps, directory=d.directory_apps)
    d.setup_done = True


async def healthz(request: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except (AppError, TimeoutError) as exc:
        return f"unavailable: {exc}" if str(exc) else "unavailable: no answer in time"
    return "ok"


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
            await finish_setup(d)
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, result in checks.items() if result != "ok")
    detail, headers = f"not ready: {failing}", {"Retry-After": "5"}
    kind, title = Unavailable.kind, Unavailable.title
    return problem_response(request, 503, detail, kind=kind, title=title, headers=headers, checks=checks)
