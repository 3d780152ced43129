"""Jobs: submitted, listed with filters, and described."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.idempotency import check_key, submit_once
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import JobRequest, SubmissionStores, submit_job
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.job_filters import job_query
from services.gateway.surfaces.native.schemas import JobOut, JobPage
from shared.errors import Invalid, Violation
from shared.models import (
    DatasetInput,
    Job,
    JobState,
)

M = TypeVar("M", bound=BaseModel)

resource = Resource("jobs")
MAX_BODY_BYTES = 1 * 2**20
_BRANCHES = frozenset({"str", DatasetInput.__name__})
INPUT_SHAPE = 'must be a file id, {"dataset": ID} or {"dataset": ID, "path": MEMBER}'


QUEUE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "1-255 visible ASCII characters; the same key with another request is 409; kept a day",
    location="header",
)


def _input_violation(violation: Violation) -> Violation:
    """Point at the input itself, not at the union branch pydantic tried (``[/jobs/N]/inputs/SLOT/str``)."""
    parts = violation.pointer.split("/")
    at = 3 if len(parts) > 3 and parts[1] == "jobs" else 1  # inside a batch, the request is at /jobs/N
    if len(parts) < at + 3 or parts[at] != "inputs" or parts[at + 2] not in _BRANCHES:
        return violation
    if len(parts) == at + 3:
        return Violation("/".join(parts[: at + 2]), INPUT_SHAPE)
    return Violation("/".join(parts[: at + 2] + parts[at + 3 :]), violation.detail)


def parse_job_request(raw: bytes, model: type[M] = JobRequest) -> M:  # type: ignore[assignment]
    """The job request (or another body holding inputs), with every shape error pointed at."""
    try:
        return parse_model(raw, model)
    except Invalid as exc:
        violations = list(dict.fromkeys(_input_violation(v) for v in exc.violations))
        raise Invalid("the job request is malformed", violations) from None


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
    """POST /v1/jobs."""
    d, owner = deps(request), principal(request).user_id
    job_request: JobRequest = parse_job_request(await read_body(request, MAX_BODY_BYTES))

    async def submit(job_id: str | None = None) -> Job:
        return await submit_job(
            stores=SubmissionStores.of(d.stores),
            request=job_request,
            owner=owner,
            wake=d.wake,
            job_id=job_id,
            retention=RetentionPolicy.of(d.settings),
            networks=d.settings.allowed_networks(),
        )

    key = request.headers.get("idempotency-key")
    if key is None:
        job, replayed = await submit(), False
    else:
        job, replayed = await submit_once(
            idempotency=d.stores.idempotency,
            owner=owner,
            key=check_key(key),
            request=job_request.model_dump(mode="json"),
            submit=submit,
            replay=lambda job_id: d.stores.jobs.get_job(job_id, owner=owner),
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
    query=(
        *PAGED,
        Param(
            "state",
            "Only jobs in these states: repeat it, or separate them with commas",
            {"type": "array", "items": {"type": "string", "enum": [state.value for state in JobState]}},
        ),
        Param("exit_code", "Only jobs that exited with this code", {"type": "integer"}),
        Param("app", "Only jobs of this app"),
        Param("queue", "Only jobs of this queue (by name)", {"type": "string", "pattern": QUEUE_PATTERN}),
        Param("batch", "Only jobs of this batch", {"type": "string", "pattern": "^[0-9a-z]{26}$"}),
        Param("tag", "Only jobs with this tag", {"type": "string", "pattern": "^[a-z0-9._-]{1,50}$"}),
        Param("name_prefix", "Only names starting with this text (taken literally)"),
        Param("created_after", "ISO 8601 time"),
        Param("created_before", "ISO 8601 time"),
        Param("finished_after", "ISO 8601 time"),
        Param("finished_before", "ISO 8601 time"),
        Param(
            "sort",
            "created: oldest first; -created: newest first (the default)",
            {"type": "string", "enum": ["created", "-created"]},
        ),
    ),
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
