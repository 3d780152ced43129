"""Wires the gateway together: the surfaces it mounts, its request log, and the lifespan that opens clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from services.gateway.deps import Deps, LifespanState
from services.gateway.domain.accounts import LoginGuard
from services.gateway.domain.hashing import HashingPool
from services.gateway.domain.job_metrics import ACTIVE_JOBS
from services.gateway.domain.login_limits import LoginLimits
from services.gateway.plumbing.auth import Authenticator
from services.gateway.plumbing.metrics import metrics_route
from services.gateway.plumbing.middleware import RequestLog
from services.gateway.plumbing.problems import app_error, http_error
from services.gateway.scheduling.scheduler import Scheduler
from services.gateway.surfaces import native, tes, ui
from shared.apps import load_apps
from shared.broker import Broker
from shared.errors import AppError
from shared.metrics import MetricsListener
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store import Stores

log = structlog.get_logger()


def dispatch_elsewhere() -> None:
    """Nothing to wake: the scheduler runs in its own process, and sends new jobs at its next pass."""


def create_app(settings: GatewaySettings) -> Starlette:
    """The gateway ASGI app; clients (and, unless RUN_SCHEDULER=false, the scheduler) start in its lifespan."""
    directory_apps = load_apps(settings.apps_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[LifespanState]:
        stores = Stores.connect(settings, appname="quern-gateway")
        storage = ObjectStorage(settings)
        broker = Broker(settings)
        authenticator = Authenticator(
            stores.accounts,
            settings.auth_secret.get_secret_value(),
            cache_seconds=settings.auth_cache_seconds,
            recheck_seconds=settings.stream_recheck_seconds,
        )
        hashing = HashingPool(threads=settings.password_hash_threads, queue=settings.password_hash_queue)
        scheduler = (
            Scheduler.configured(settings, stores=stores, storage=storage, broker=broker)
            if settings.run_scheduler
            else None
        )
        d = Deps(
            settings=settings,
            directory_apps=directory_apps,
            stores=stores,
            storage=storage,
            broker=broker,
            authenticator=authenticator,
            logins=LoginGuard(hashing, LoginLimits.configured(settings)),
            wake=dispatch_elsewhere if scheduler is None else scheduler.wake,
        )
        try:
            await d.finish_setup()
        except AppError as exc:
            # Start anyway: /readyz reports what is missing and finishes setup once it answers.
            log.warning("backend_not_ready_at_start", detail=exc.detail)
        log.info(
            "gateway_started",
            directory_apps=sorted(directory_apps),
            bucket=settings.s3_bucket,
            scheduler=scheduler is not None,
        )
        if scheduler is not None:
            scheduler.start()
        listener = MetricsListener(settings)
        counting = (
            asyncio.create_task(
                ACTIVE_JOBS.count_forever(jobs=stores.jobs, broker=broker, every=settings.metrics_refresh_seconds)
            )
            if settings.gateway_metrics or settings.metrics_port
            else None
        )
        try:
            yield {"deps": d}
        finally:
            if counting is not None:
                counting.cancel()
                with suppress(asyncio.CancelledError):
                    await counting
            await run_in_threadpool(listener.close)
            if scheduler is not None:
                await scheduler.stop()
            await run_in_threadpool(broker.close)
            await run_in_threadpool(storage.close)
            await stores.close()
            hashing.close()
            log.info("gateway_stopped")

    metrics = [metrics_route()] if settings.gateway_metrics else []
    return Starlette(
        routes=[*metrics, *native.routes(), *tes.routes(), *ui.routes(settings)],
        middleware=[Middleware(RequestLog)],
        exception_handlers={AppError: app_error, HTTPException: http_error},
        lifespan=lifespan,
    )
