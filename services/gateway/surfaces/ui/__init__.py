"""The web UI (``/ui``): server-rendered pages for people, over the same domain operations as the native API.

A surface of its own: a session cookie (not a bearer token) opens it, every change carries a CSRF
token, every answer carries a strict Content-Security-Policy, and errors are pages. Scripts and
styles are the package's own static files; pages work without them and follow jobs live with them.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.gateway.surfaces.ui import (
    dataset_pages,
    file_pages,
    job_actions,
    job_list,
    job_page,
    operations,
    sign_in,
    streams,
    submit,
)
from services.gateway.surfaces.ui.headers import SecurityHeaders
from services.gateway.surfaces.ui.sessions import SessionGate
from services.gateway.surfaces.ui.templates import app_error, error_page, http_error
from shared.errors import AppError
from shared.settings import GatewaySettings

STATIC = Path(__file__).parent / "static"
PUBLIC = ("/login", "/static/")  # within /ui: everything else needs a session


def home(_: object) -> RedirectResponse:
    """GET /ui/: the jobs page."""
    return RedirectResponse("jobs", status_code=303)


def routes(settings: GatewaySettings) -> list[BaseRoute]:
    """The UI mounted at /ui, behind its session gate and security headers."""
    pages = [
        Route("/", home, methods=["GET"]),
        Route("/login", sign_in.show_login, methods=["GET"], name="login"),
        Route("/login", sign_in.log_in, methods=["POST"]),
        Route("/logout", sign_in.log_out, methods=["POST"], name="logout"),
        Route("/jobs", job_list.list_jobs, methods=["GET"], name="jobs"),
        Route("/events", streams.my_events, methods=["GET"], name="events"),
        Route("/jobs/{job_id}", job_page.show_job, methods=["GET"], name="job"),
        Route("/jobs/{job_id}/results", job_page.show_results, methods=["GET"], name="job_results"),
        Route("/jobs/{job_id}/events", streams.job_events, methods=["GET"], name="job_events"),
        Route("/jobs/{job_id}/cancel", job_actions.cancel, methods=["POST"], name="job_cancel"),
        Route("/jobs/{job_id}/rerun", job_actions.rerun, methods=["POST"], name="job_rerun"),
        Route("/jobs/{job_id}/delete", job_actions.delete, methods=["POST"], name="job_delete"),
        Route("/submit", submit.choose_app, methods=["GET"], name="apps"),
        Route("/submit/{app}", submit.show_form, methods=["GET"], name="submit"),
        Route("/submit/{app}", submit.submit, methods=["POST"]),
        Route("/files", submit.upload, methods=["POST"], name="files"),
        # -- files and datasets: the files page, direct-to-S3 uploads, the datasets pages --
        Route("/files", file_pages.list_files, methods=["GET"]),
        Route("/files/{file_id}/delete", file_pages.delete, methods=["POST"], name="file_delete"),
        Route("/uploads", file_pages.start, methods=["POST"], name="uploads"),
        Route("/uploads/{upload_id}/complete", file_pages.complete, methods=["POST"], name="upload_complete"),
        Route("/uploads/{upload_id}/cancel", file_pages.cancel, methods=["POST"], name="upload_cancel"),
        Route("/datasets", dataset_pages.list_datasets, methods=["GET"], name="datasets"),
        Route("/datasets", dataset_pages.create, methods=["POST"]),
        Route("/datasets/{dataset_id}", dataset_pages.show_dataset, methods=["GET"], name="dataset"),
        Route("/datasets/{dataset_id}/delete", dataset_pages.delete, methods=["POST"], name="dataset_delete"),
        # -- end of files and datasets --
        Route("/queues", operations.list_queues, methods=["GET"], name="queues"),
        Route("/queues/{queue_id}/pause", operations.pause, methods=["POST"], name="queue_pause"),
        Route("/queues/{queue_id}/resume", operations.resume, methods=["POST"], name="queue_resume"),
        Route("/cluster", operations.cluster, methods=["GET"], name="cluster"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return [
        Mount(
            "/ui",
            routes=pages,
            name="ui",
            middleware=[
                Middleware(SecurityHeaders, settings=settings),
                Middleware(ExceptionMiddleware, handlers={AppError: app_error, HTTPException: http_error}),
                Middleware(SessionGate, public=PUBLIC, refuse=error_page),
            ],
        )
    ]
