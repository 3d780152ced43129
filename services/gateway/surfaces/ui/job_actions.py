"""What the job page's buttons do: cancel and delete; each a form post carrying the session's CSRF token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.cancellation import cancel_job, delete_job
from services.gateway.plumbing.auth import principal


def to_job(request: Request, job_id: str) -> Response:
    """Back to a job's page (303: the browser follows with a GET)."""
    return RedirectResponse(request.url_for("ui:job", job_id=job_id).path, status_code=303)


async def cancel(request: Request) -> Response:
    """POST /ui/jobs/{job_id}/cancel."""
    who, d = principal(request), deps(request)
    job = await cancel_job(
        jobs=d.stores.jobs,
        events=d.stores.events,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
        broker=d.broker,
    )
    return to_job(request, job.id)


async def delete(request: Request) -> Response:
    """POST /ui/jobs/{job_id}/delete: the jobs page (409 while a running job is being stopped)."""
    who, d = principal(request), deps(request)
    await delete_job(
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
    )
    return RedirectResponse(request.url_for("ui:jobs").path, status_code=303)
