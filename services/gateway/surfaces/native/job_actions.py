"""What can be done to a job: cancel it, delete it, run it again, or (admins) force its state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.cancellation import cancel_job, delete_job
from services.gateway.domain.forced_states import ForcedState, force_state
from services.gateway.domain.reruns import RerunRequest, rerun_job
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import SubmissionStores
from services.gateway.plumbing.answers import Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_body, read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.native.job_requests import MAX_JOB_BYTES, parse_job_request
from services.gateway.surfaces.native.jobs import JobOut, render_job

resource = Resource("jobs")


@resource.endpoint(
    "POST",
    "/jobs/{job_id}/rerun",
    summary="Submit a new job like this one (same app and version), with optional overrides; "
    "409 if that version is no longer the app's current one, or the app is disabled",
    answer=JobOut,
    status=201,
    body=RerunRequest,
    body_optional=True,
    errors=(409, 429),
)
async def rerun(request: Request) -> Reply[JobOut]:
    """POST /v1/jobs/{job_id}/rerun."""
    d = deps(request)
    raw = await read_body(request, MAX_JOB_BYTES)
    job = await rerun_job(
        stores=SubmissionStores.of(d.stores),
        wake=d.wake,
        quotas=d.quotas,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        changes=lambda: parse_job_request(raw, RerunRequest) if raw.strip() else RerunRequest(),
        retention=RetentionPolicy.of(d.settings),
        networks=d.settings.allowed_networks(),
    )
    shown = render_job(request, job)
    return Reply(shown, headers={"Location": shown.url})


@resource.endpoint(
    "POST",
    "/jobs/{job_id}/cancel",
    summary="Cancel: QUEUED becomes CANCELED at once; RUNNING is stopped within seconds; "
    "finished jobs stay as they are",
    answer=JobOut,
)
async def cancel(request: Request) -> JobOut:
    """POST /v1/jobs/{job_id}/cancel: the job, CANCELED, being stopped (cancel_requested set), or already finished."""
    who, d = principal(request), deps(request)
    job = await cancel_job(
        jobs=d.stores.jobs,
        events=d.stores.events,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
        broker=d.broker,
    )
    return render_job(request, job)


@resource.endpoint(
    "DELETE",
    "/jobs/{job_id}",
    summary="Delete a job with its outputs, logs and archive; an unfinished job is canceled first "
    "(409 with Retry-After while a running one is being stopped and packaged)",
    answer=None,
    status=204,
    errors=(409,),
)
async def remove(request: Request) -> Response:
    """DELETE /v1/jobs/{job_id}: 204, or 409 (Retry-After) while a running job is being stopped."""
    who, d = principal(request), deps(request)
    await delete_job(
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
    )
    return Response(status_code=204)


@resource.endpoint(
    "POST",
    "/jobs/{job_id}/state",
    summary="Force a job's state, with a reason kept in its history (admin; 409 if it is in that state already)",
    answer=JobOut,
    body=ForcedState,
    errors=(403, 409),
)
async def force(request: Request) -> JobOut:
    """POST /v1/jobs/{job_id}/state: another user's job is 404 and one's own 403 unless an admin, before the body."""
    who, d = principal(request), deps(request)
    job = await force_state(
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        broker=d.broker,
        wake=d.wake,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        admin=who.is_admin,
        by=who.username,
        wanted=lambda: read_model(request, ForcedState),
    )
    return render_job(request, job)
