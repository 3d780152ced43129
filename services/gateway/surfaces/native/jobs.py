"""Jobs: submitted, listed with filters, and described; ``JobOut`` is how every job endpoint shows a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, TypeAdapter
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import JobRequest, SubmissionStores, submit_job_once
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_body
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from services.gateway.surfaces.native.job_filters import JOB_FILTERS, job_query
from services.gateway.surfaces.native.job_requests import IDEMPOTENCY_KEY, MAX_JOB_BYTES, parse_job_request
from shared.models import Job, JobState

resource = Resource("jobs")
_TIME = TypeAdapter(datetime)


class OutputOut(Out):
    path: str
    size: int
    sha256: str
    content_type: str


class ArchiveOut(Out):
    size: int
    sha256: str
    created: str


class JobErrorOut(Out):
    reason: str
    stderr_tail: str


class StateChangeOut(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    at: str
    from_: JobState = Field(alias="from")
    to: JobState
    by: str = Field(description="the admin's username")
    reason: str


class JobLinks(Out):
    self: str
    app: str
    archive: str
    outputs: str
    events: str
    logs: dict[str, str] = Field(description="log name -> its byte-range reader, once the job has ended")
    deliveries: str = Field(description="the webhook deliveries of its events")


class ProgressOut(Out):
    percent: float = Field(ge=0, le=100)
    step: str
    at: str


class RetryPolicyOut(Out):
    exit_codes: list[int]
    attempts: int


class WebhookTargetOut(Out):
    url: str
    progress: bool = Field(description="whether job.progress events are POSTed too")


class JobOut(Out):
    id: str
    url: str
    owner: str
    app: str
    app_version: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    timeout_seconds: int
    name: str | None
    tags: list[str]
    priority: int = Field(ge=0, le=9)
    rerun_of: str | None = Field(description="the id of the job this one re-runs")
    state: JobState
    exit_code: int | None
    created: str
    started: str | None
    finished: str | None
    elapsed_seconds: float | None
    error: JobErrorOut | None
    cancel_requested: str | None = Field(description="when a cancel of the running job was asked for")
    outputs: list[OutputOut]
    archive: ArchiveOut | None
    history: list[StateChangeOut] = Field(description="forced state changes, oldest first")
    progress: ProgressOut | None = Field(description='the app\'s latest ##quern progress PERCENT "STEP" line')
    queue: str
    attempt: int = Field(ge=1, description="which run this is; recovery from a dead worker adds one")
    preemptions: int = Field(
        ge=0, description="runs handed back to the queue by a runner shutting down (they do not count as attempts)"
    )
    retry: RetryPolicyOut | None = Field(description="exit codes that mean: run again, and the most runs in all")
    batch: str | None = Field(description="the batch it was submitted in")
    depends_on: list[str] = Field(description="jobs that must succeed before this one starts")
    waiting_on: list[str] = Field(description="those of depends_on that have not succeeded yet")
    dispatched: str | None = Field(description="when it was sent to the runners (null while it waits)")
    retention_seconds: int | None = Field(description="its results are kept this long after it ends (null: for ever)")
    expires: str | None = Field(description="when its outputs, logs and archive are deleted (null: not set, or never)")
    expired: str | None = Field(description="when they were deleted; its archive, logs and outputs then answer 410")
    webhook: WebhookTargetOut | None = Field(description="its own receiver of its terminal event, if it has one")
    task: dict[str, Any] | None = Field(
        description="the GA4GH TES task it runs (app ga4gh-tes; see /ga4gh/tes/v1), as submitted; null for others"
    )
    links: JobLinks


class JobPage(PageOut[JobOut]):
    pass  # a docstring would become the schema's description in the OpenAPI document


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_time(value: datetime) -> str:
    """A time nested in a job as pydantic writes it (UTC as ``Z``), unlike the job's own ``isoformat`` times."""
    return str(_TIME.dump_python(value, mode="json"))


def render_job(request: Request, job: Job) -> JobOut:
    """The public view of a job."""
    url = link(request, "job", job_id=job.id)
    error, archive, progress, retry, webhook = job.error, job.archive, job.progress, job.retry, job.webhook
    return JobOut(
        id=job.id,
        url=url,
        owner=job.owner,
        app=job.app,
        app_version=job.app_version,
        params=job.params,
        inputs=job.inputs_json(),
        timeout_seconds=job.timeout_seconds,
        name=job.name,
        tags=job.tags,
        priority=job.priority,
        rerun_of=job.rerun_of,
        state=job.state,
        exit_code=job.exit_code,
        created=job.created.isoformat(),
        started=_iso(job.started),
        finished=_iso(job.finished),
        elapsed_seconds=job.elapsed_seconds,
        error=None if error is None else JobErrorOut(reason=error.reason, stderr_tail=error.stderr_tail),
        cancel_requested=_iso(job.cancel_requested),
        outputs=[
            OutputOut(path=o.path, size=o.size, sha256=o.sha256, content_type=o.content_type) for o in job.outputs
        ],
        archive=None
        if archive is None
        else ArchiveOut(size=archive.size, sha256=archive.sha256, created=_json_time(archive.created)),
        # by the stored change's JSON: ``from`` is no keyword argument
        history=[StateChangeOut.model_validate(c.model_dump(mode="json", by_alias=True)) for c in job.history],
        progress=None
        if progress is None
        else ProgressOut(percent=progress.percent, step=progress.step, at=_json_time(progress.at)),
        queue=job.queue,
        attempt=job.attempt,
        preemptions=job.preemptions,
        retry=None if retry is None else RetryPolicyOut(exit_codes=retry.exit_codes, attempts=retry.attempts),
        batch=job.batch,
        depends_on=job.depends_on,
        waiting_on=job.waiting_on,
        dispatched=_iso(job.dispatched),
        retention_seconds=job.retention_seconds,
        expires=_iso(job.expiry),
        expired=_iso(job.expired),
        webhook=None if webhook is None else WebhookTargetOut(url=webhook.url, progress=webhook.progress),
        task=None if job.task is None else job.task.model_dump(mode="json", exclude_defaults=True),
        links=JobLinks(
            self=url,
            app=link(request, "app", name=job.app),
            archive=link(request, "job_archive", job_id=job.id),
            outputs=link(request, "job_outputs", job_id=job.id),
            events=link(request, "job_events", job_id=job.id),
            logs={name: link(request, "job_log", job_id=job.id, name=name) for name in sorted(job.logs)},
            deliveries=link(request, "job_deliveries", job_id=job.id),
        ),
    )


@resource.endpoint(
    "POST",
    "/jobs",
    summary="Submit a job; with Idempotency-Key, the same key and body answer the same job (200), never a second",
    answer=JobOut,
    status=201,
    body=JobRequest,
    query=(IDEMPOTENCY_KEY,),
    errors=(409, 429),
    replay=True,
)
async def submit(request: Request) -> Reply[JobOut]:
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
        quotas=await d.quotas(principal(request).user_id),
        retention=RetentionPolicy.of(d.settings),
        networks=d.settings.allowed_networks(),
    )
    shown = render_job(request, job)
    if replayed:
        return Reply(shown, status=200, headers={"Location": shown.url, "Idempotent-Replayed": "true"})
    return Reply(shown, headers={"Location": shown.url})


@resource.endpoint("GET", "/jobs/{job_id}", name="job", summary="A job", answer=JobOut)
async def describe(request: Request) -> JobOut:
    """GET /v1/jobs/{job_id}."""
    job = await deps(request).stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    return render_job(request, job)


@resource.endpoint(
    "GET",
    "/jobs",
    name="jobs",
    summary="The caller's jobs (an admin's: everyone's), newest first; every filter given must hold",
    answer=JobPage,
    query=(*PAGED, *JOB_FILTERS),
    errors=(400,),
)
async def list_jobs(request: Request) -> JobPage:
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
    return paged(request, page, lambda job: render_job(request, job), JobPage)
