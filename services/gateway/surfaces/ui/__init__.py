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
    account,
    admin_apps,
    admin_users,
    api_keys,
    dataset_pages,
    file_pages,
    forced_form,
    job_actions,
    job_list,
    job_page,
    operations,
    queue_repairs,
    rerun_form,
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


def repairs_and_admin() -> list[BaseRoute]:
    """Rerun with changes, queue repairs, account, API keys, and the admin pages (users, apps, forcing states)."""
    return [
        Route("/jobs/{job_id}/rerun", rerun_form.show_form, methods=["GET"], name="job_rerun"),
        Route("/jobs/{job_id}/rerun", rerun_form.rerun, methods=["POST"]),
        Route("/jobs/{job_id}/state", forced_form.force, methods=["POST"], name="job_force"),
        Route("/queues/{queue_id}/retry", queue_repairs.retry, methods=["POST"], name="queue_retry"),
        Route("/queues/{queue_id}/recover", queue_repairs.recover, methods=["POST"], name="queue_recover"),
        Route("/account", account.show_account, methods=["GET"], name="account"),
        Route("/account/password", account.change, methods=["POST"], name="account_password"),
        Route("/account/logout-all", account.sign_out_everywhere, methods=["POST"], name="account_logout_all"),
        Route("/keys", api_keys.list_keys, methods=["GET"], name="keys"),
        Route("/keys", api_keys.add_key, methods=["POST"]),
        Route("/keys/{key_id}/revoke", api_keys.revoke, methods=["POST"], name="key_revoke"),
        Route("/admin/users", admin_users.list_users, methods=["GET"], name="admin_users"),
        Route("/admin/users", admin_users.add_user, methods=["POST"]),
        Route("/admin/users/{user_id}/limit", admin_users.set_limit, methods=["POST"], name="admin_user_limit"),
        Route("/admin/users/{user_id}/disable", admin_users.disable, methods=["POST"], name="admin_user_disable"),
        Route("/admin/users/{user_id}/enable", admin_users.enable, methods=["POST"], name="admin_user_enable"),
        Route("/admin/apps", admin_apps.list_apps, methods=["GET"], name="admin_apps"),
        Route("/admin/apps", admin_apps.register, methods=["POST"]),
        Route("/admin/apps/{app}/disable", admin_apps.disable, methods=["POST"], name="admin_app_disable"),
        Route("/admin/apps/{app}/enable", admin_apps.enable, methods=["POST"], name="admin_app_enable"),
    ]


def routes(settings: GatewaySettings) -> list[BaseRoute]:
    """The UI mounted at /ui, behind its session gate and security headers."""
    pages = [
        Route("/", home, methods=["GET"]),
        Route("/login", sign_in.show_login, methods=["GET"], name="login"),
        Route("/login", sign_in.log_in, methods=["POST"]),
        Route("/logout", sign_in.log_out, methods=["POST"], name="logout"),
        Route("/jobs", job_list.list_jobs, methods=["GET"], name="jobs"),
        Route("/jobs/counts", job_list.count_jobs, methods=["GET"], name="job_counts"),
        Route("/events", streams.my_events, methods=["GET"], name="events"),
        Route("/jobs/{job_id}", job_page.show_job, methods=["GET"], name="job"),
        Route("/jobs/{job_id}/results", job_page.show_results, methods=["GET"], name="job_results"),
        Route("/jobs/{job_id}/events", streams.job_events, methods=["GET"], name="job_events"),
        Route("/jobs/{job_id}/cancel", job_actions.cancel, methods=["POST"], name="job_cancel"),
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
        *repairs_and_admin(),
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
