"""Jobs: submitted, listed with filters, and described."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import JobRequest, SubmissionStores, submit_job_once
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_body
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.job_filters import JOB_FILTERS, job_query
from services.gateway.surfaces.native.job_requests import IDEMPOTENCY_KEY, MAX_JOB_BYTES, parse_job_request
from services.gateway.surfaces.native.schemas import JobOut, JobPage
from shared.models import Job

resource = Resource("jobs")


def render_job(request: Request, job: Job) -> dict[str, Any]:
    """The public view of a job."""

    def iso(value: Any) -> str | None:
        return None if value is None else str(value.isoformat())

    url = link(request, "job", job_id=job.id)
    return {
        "id": job.id,
        "url": url,
        "owner": job.owner,
        "app": job.app,
        "app_version": job.app_version,
        "params": job.params,
        "inputs": job.inputs_json(),
        "timeout_seconds": job.timeout_seconds,
        "name": job.name,
        "tags": job.tags,
        "priority": job.priority,
        "rerun_of": job.rerun_of,
        "state": job.state.value,
        "exit_code": job.exit_code,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "elapsed_seconds": job.elapsed_seconds,
        "error": None if job.error is None else job.error.model_dump(),
        "cancel_requested": None if job.cancel_requested is None else job.cancel_requested.isoformat(),
        "outputs": [o.model_dump(exclude={"key"}) for o in job.outputs],
        "archive": None if job.archive is None else job.archive.model_dump(mode="json", exclude={"key"}),
        "history": [change.model_dump(mode="json", by_alias=True) for change in job.history],
        "progress": None if job.progress is None else job.progress.model_dump(mode="json"),
        "queue": job.queue,
        "attempt": job.attempt,
        "retry": None if job.retry is None else job.retry.model_dump(),
        "batch": job.batch,
        "depends_on": job.depends_on,
        "waiting_on": job.waiting_on,
        "dispatched": iso(job.dispatched),
        "retention_seconds": job.retention_seconds,
        "expires": iso(job.expiry),
        "expired": iso(job.expired),
        "webhook": None if job.webhook is None else job.webhook.model_dump(),
        "links": {
            "self": url,
            "app": link(request, "app", name=job.app),
            "archive": link(request, "job_archive", job_id=job.id),
            "outputs": link(request, "job_outputs", job_id=job.id),
            "events": link(request, "job_events", job_id=job.id),
            "deliveries": link(request, "job_deliveries", job_id=job.id),
            "logs": {name: link(request, "job_log", job_id=job.id, name=name) for name in sorted(job.logs)},
        },
    }


@resource.endpoint(
    "POST",
    "/jobs",
    summary="Submit a job; with Idempotency-Key, the same key and body answer the same job (200), never a second",
    answer=JobOut,
    status=201,
    body=JobRequest,
    query=(IDEMPOTENCY_KEY,),
    errors=(409,),
    replay=True,
)
async def submit(request: Request) -> Response:
    """POST /v1/jobs: 201 with the new job, or 200 (Idempotent-Replayed) with the one its key submitted before."""
    d = deps(request)
    job_request: JobRequest = parse_job_request(await read_body(request, MAX_JOB_BYTES))
    job, replayed = await submit_job_once(
        stores=SubmissionStores.of(d.stores),
        idempotency=d.stores.idempotency,
        request=job_request,
        owner=principal(request).user_id,
        key=request.headers.get("idempotency-key"),
        wake=d.wake,
        retention=RetentionPolicy.of(d.settings),
        networks=d.settings.allowed_networks(),
    )
    body = render_job(request, job)
    if replayed:
        return JSONResponse(body, headers={"Location": body["url"], "Idempotent-Replayed": "true"})
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


@resource.endpoint("GET", "/jobs/{job_id}", name="job", summary="A job", answer=JobOut)
async def describe(request: Request) -> Response:
    """GET /v1/jobs/{job_id}."""
    job = await deps(request).stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_job(request, job))


@resource.endpoint(
    "GET",
    "/jobs",
    name="jobs",
    summary="The caller's jobs (an admin's: everyone's), newest first; every filter given must hold",
    answer=JobPage,
    query=(*PAGED, *JOB_FILTERS),
    errors=(400,),
)
async def list_jobs(request: Request) -> Response:
    """GET /v1/jobs: the caller's jobs (an admin's: everyone's), filtered, newest first unless ``sort=created``."""
    wanted = page_request(request)
    query = job_query(request)
    page = await deps(request).stores.jobs.list_jobs(
        owner=principal(request).owner_filter,
        limit=wanted.limit,
        after=wanted.after,
        where=query.where,
        oldest_first=query.oldest_first,
    )
    return page_response(request, page, lambda job: render_job(request, job))
