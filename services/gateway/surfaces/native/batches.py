"""Batch submission: up to 10,000 jobs in one call, all validated before any is stored, all or nothing."""

from __future__ import annotations

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.batches import BatchRequest, SubmittedBatch, submit_batch_once
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import SubmissionStores
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_body
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.surfaces.native.job_requests import IDEMPOTENCY_KEY, parse_job_request
from shared.models import JobState

resource = Resource("jobs")
MAX_BODY_BYTES = 32 * 2**20


class BatchItem(Out):
    id: str
    url: str
    state: JobState
    name: str | None
    queue: str


class BatchLinks(Out):
    jobs: str = Field(description="the batch's jobs, as a filtered job list")


class BatchOut(Out):
    batch: str
    count: int
    items: list[BatchItem]
    links: BatchLinks


def render_batch(request: Request, batch: SubmittedBatch) -> BatchOut:
    """The batch's id and a short line per job (GET each job's URL for the rest)."""
    return BatchOut(
        batch=batch.id,
        count=len(batch.jobs),
        items=[
            BatchItem(
                id=job.id, url=link(request, "job", job_id=job.id), state=job.state, name=job.name, queue=job.queue
            )
            for job in batch.jobs
        ],
        links=BatchLinks(jobs=str(request.url_for("jobs").include_query_params(batch=batch.id))),
    )


@resource.endpoint(
    "POST",
    "/jobs/batch",
    summary="Submit up to 10,000 jobs at once: all are validated first, then all are stored, or none "
    "(422 points into /jobs/N); with Idempotency-Key, a repeat answers the same batch (200)",
    answer=BatchOut,
    status=201,
    body=BatchRequest,
    query=(IDEMPOTENCY_KEY,),
    errors=(409, 413, 429),
    replay=True,
)
async def submit(request: Request) -> Reply[BatchOut]:
    """POST /v1/jobs/batch: 201 with every job's id, or 4xx and nothing stored; a repeat 200 (Idempotent-Replayed)."""
    d = deps(request)
    raw = await read_body(request, MAX_BODY_BYTES)
    # Up to 32 MiB of JSON into 10,000 jobs' models, and as many lines back: each takes a good part of a second.
    batch_request: BatchRequest = await run_in_threadpool(parse_job_request, raw, BatchRequest)
    batch, replayed = await submit_batch_once(
        stores=SubmissionStores.of(d.stores),
        batches=d.stores.batches,
        idempotency=d.stores.idempotency,
        batch=batch_request,
        owner=principal(request).user_id,
        key=request.headers.get("idempotency-key"),
        wake=d.wake,
        quotas=await d.quotas(principal(request).user_id),
        retention=RetentionPolicy.of(d.settings),
        networks=d.settings.allowed_networks(),
    )
    shown = await run_in_threadpool(render_batch, request, batch)
    if replayed:
        return Reply(shown, status=200, headers={"Idempotent-Replayed": "true"})
    return Reply(shown)
