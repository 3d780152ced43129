"""Wires the gateway together: routes, error handlers, middleware and the lifespan that opens clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from services.gateway import (
    apps,
    batches,
    cluster,
    datasets,
    events,
    files,
    forced_states,
    health,
    job_deletion,
    jobs,
    logs,
    outputs,
    queues,
    registrations,
    reruns,
    uploads,
    users,
    webhooks,
)
from services.gateway.auth import Authentication, Authenticator
from services.gateway.dispatcher import Dispatcher
from services.gateway.health import finish_setup
from services.gateway.middleware import RequestLog
from services.gateway.openapi import build_document, meta_routes
from services.gateway.problems import app_error, http_error
from services.gateway.state import Deps, LifespanState
from shared.apps import load_apps
from shared.broker import Broker
from shared.errors import AppError
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store import Stores

log = structlog.get_logger()
UPLOAD_SWEEP_SECONDS = 600  # expired presigned uploads are discarded within this long


def create_app(settings: GatewaySettings) -> Starlette:
    """The gateway ASGI app; clients open in its lifespan, so nothing connects at import."""
    directory_apps = load_apps(settings.apps_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[LifespanState]:
        stores = Stores.connect(settings, appname="quern-gateway")
        storage = ObjectStorage(settings)
        broker = Broker(settings)
        authenticator = Authenticator(stores.accounts, settings.auth_secret.get_secret_value())
        dispatcher = Dispatcher(
            stores=stores,
            storage=storage,
            broker=broker,
            interval=settings.dispatch_interval_seconds,
            ahead=settings.dispatch_ahead,
            user_max_running=settings.user_max_running,
            heartbeat_seconds=settings.worker_heartbeat_seconds,
            max_attempts=settings.max_attempts,
        )
        d = Deps(
            settings=settings,
            directory_apps=directory_apps,
            stores=stores,
            storage=storage,
            broker=broker,
            authenticator=authenticator,
            dispatcher=dispatcher,
        )
        try:
            await finish_setup(d)
        except AppError as exc:
            # Start anyway: /readyz reports what is missing and finishes setup once it answers.
            log.warning("backend_not_ready_at_start", detail=exc.detail)
        log.info("gateway_started", directory_apps=sorted(directory_apps), bucket=settings.s3_bucket)
        background = [
            asyncio.create_task(
                uploads.sweep_forever(files=stores.files, storage=storage, every_seconds=UPLOAD_SWEEP_SECONDS)
            ),
            asyncio.create_task(dispatcher.run_forever()),
        ]
        try:
            yield {"deps": d}
        finally:
            for task in background:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await run_in_threadpool(broker.close)
            await run_in_threadpool(storage.close)
            await stores.close()
            storage.close()
            log.info("gateway_stopped")

    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Mount(
            "/v1",
            routes=[
                Route("/auth/login", users.login, methods=["POST"]),
                Route("/me", users.me),
                Route("/users", users.add_user, methods=["POST"]),
                Route("/users", users.list_users),
                Route("/users/{user_id}", users.describe_user, name="user"),
                Route("/users/{user_id}", users.disable_user, methods=["DELETE"]),
                Route("/users/{user_id}", users.change_user, methods=["PATCH"]),
                Route("/keys", users.add_key, methods=["POST"]),
                Route("/keys", users.list_keys),
                Route("/keys/{key_id}", users.describe_key, name="key"),
                Route("/keys/{key_id}", users.revoke_key, methods=["DELETE"]),
                Route("/files", files.upload, methods=["POST"]),
                Route("/files", files.list_files),
                Route("/files/{file_id}", files.describe, name="file"),
                Route("/cluster", cluster.cluster),
                Route("/files/{file_id}", files.delete, methods=["DELETE"]),
                Route("/files/{file_id}/download", files.download, name="file_download"),
                Route("/uploads", uploads.create, methods=["POST"]),
                Route("/uploads/{upload_id}", uploads.describe, name="upload"),
                Route("/uploads/{upload_id}", uploads.cancel, methods=["DELETE"]),
                Route("/uploads/{upload_id}/complete", uploads.complete, methods=["POST"], name="upload_complete"),
                Route("/datasets", datasets.create, methods=["POST"]),
                Route("/datasets", datasets.list_datasets),
                Route("/datasets/{dataset_id}", datasets.describe, name="dataset"),
                Route("/datasets/{dataset_id}", datasets.change, methods=["PATCH"]),
                Route("/datasets/{dataset_id}", datasets.remove, methods=["DELETE"]),
                Route("/apps", apps.list_apps),
                Route("/apps", registrations.add_app, methods=["POST"]),
                Route("/apps/{name}", apps.describe_app, name="app"),
                Route("/apps/{name}/versions", apps.list_versions),
                Route("/apps/{name}/versions", registrations.add_version, methods=["POST"]),
                Route("/apps/{name}/disable", registrations.disable_app, methods=["POST"]),
                Route("/apps/{name}/enable", registrations.enable_app, methods=["POST"]),
                Route("/jobs", jobs.submit, methods=["POST"]),
                Route("/jobs", jobs.list_jobs, name="jobs"),
                Route("/jobs/batch", batches.submit, methods=["POST"]),
                Route("/jobs/{job_id}", jobs.describe, name="job"),
                Route("/jobs/{job_id}", job_deletion.remove, methods=["DELETE"]),
                Route("/jobs/{job_id}/archive", jobs.archive, name="job_archive"),
                Route("/jobs/{job_id}/outputs", outputs.list_outputs, name="job_outputs"),
                Route("/jobs/{job_id}/outputs/{path:path}", outputs.download, name="job_output"),
                Route("/jobs/{job_id}/cancel", jobs.cancel, methods=["POST"]),
                Route("/jobs/{job_id}/rerun", reruns.rerun, methods=["POST"]),
                Route("/jobs/{job_id}/state", forced_states.force, methods=["POST"]),
                Route("/jobs/{job_id}/events", events.job_stream, name="job_events"),
                Route("/jobs/{job_id}/logs/{name}", logs.read, name="job_log"),
                Route("/events", events.caller_stream),
                Route("/queues", queues.create, methods=["POST"]),
                Route("/queues", queues.list_queues),
                Route("/queues/{queue_id}", queues.describe, name="queue"),
                Route("/queues/{queue_id}", queues.remove, methods=["DELETE"]),
                Route("/queues/{queue_id}/pause", queues.pause, methods=["POST"]),
                Route("/queues/{queue_id}/resume", queues.resume, methods=["POST"]),
                Route("/queues/{queue_id}/retry", queues.retry, methods=["POST"]),
                Route("/queues/{queue_id}/recover", queues.recover, methods=["POST"]),
                Route("/webhook-secret", webhooks.new_secret, methods=["POST"]),
                Route("/webhooks", webhooks.create, methods=["POST"]),
                Route("/webhooks", webhooks.list_webhooks),
                Route("/webhooks/{webhook_id}", webhooks.describe, name="webhook"),
                Route("/webhooks/{webhook_id}", webhooks.remove, methods=["DELETE"]),
                Route("/jobs/{job_id}/deliveries", webhooks.job_deliveries, name="job_deliveries"),
            ],
        ),
    ]
    routes += meta_routes(build_document(routes))
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestLog), Middleware(Authentication)],
        exception_handlers={AppError: app_error, HTTPException: http_error},
        lifespan=lifespan,
    )
