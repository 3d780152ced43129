"""Batch submission: up to 10,000 jobs in one call, all validated before any is stored, all or nothing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.batches import BatchRequest, submit_batch_once
from services.gateway.domain.retention import RetentionPolicy
from services.gateway.domain.submission import SubmissionStores
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_body
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.surfaces.native.job_requests import IDEMPOTENCY_KEY, parse_job_request
from services.gateway.surfaces.native.schemas import BatchOut
from shared.models import Job

resource = Resource("jobs")
MAX_BODY_BYTES = 32 * 2**20


def render_batch(request: Request, batch_id: str, jobs: list[Job]) -> dict[str, Any]:
    """The batch's id and a short line per job (GET each job's URL for the rest)."""
    return {
        "batch": batch_id,
        "count": len(jobs),
        "items": [
            {
                "id": job.id,
                "url": link(request, "job", job_id=job.id),
                "state": job.state.value,
                "name": job.name,
                "queue": job.queue,
            }
            for job in jobs
        ],
        "links": {"jobs": str(request.url_for("jobs").include_query_params(batch=batch_id))},
    }


@resource.endpoint(
    "POST",
    "/jobs/batch",
    summary="Submit up to 10,000 jobs at once: all are validated first, then all are stored, or none "
    "(422 points into /jobs/N); with Idempotency-Key, a repeat answers the same batch (200)",
    answer=BatchOut,
    status=201,
    body=BatchRequest,
    query=(IDEMPOTENCY_KEY,),
    errors=(409, 413),
    replay=True,
)
async def submit(request: Request) -> Response:
    """POST /v1/jobs/batch: 201 with every job's id, or 4xx and nothing stored; a repeat 200 (Idempotent-Replayed)."""
    d = deps(request)
    batch_request: BatchRequest = parse_job_request(await read_body(request, MAX_BODY_BYTES), BatchRequest)
    batch, replayed = await submit_batch_once(
        stores=SubmissionStores.of(d.stores),
        batches=d.stores.batches,
        idempotency=d.stores.idempotency,
        batch=batch_request,
        owner=principal(request).user_id,
        key=request.headers.get("idempotency-key"),
        wake=d.wake,
        retention=RetentionPolicy.of(d.settings),
        networks=d.settings.allowed_networks(),
    )
    body = render_batch(request, batch.id, batch.jobs)
    if replayed:
        return JSONResponse(body, headers={"Idempotent-Replayed": "true"})
    return JSONResponse(body, status_code=201)
