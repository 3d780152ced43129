"""A job's outputs: listed with their checksums, and each one downloadable by itself through presigned URLs.

Not paginated: the job document already holds every output, and the listing is that list.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.links import link
from services.gateway.params import flag, link_response
from services.gateway.retention import require_not_expired
from services.gateway.state import deps
from shared.errors import NotFound, NotYet
from shared.models import Job, OutputFile
from shared.storage import ObjectStorage
from shared.store.jobs import JobStore


async def finished_job(job_id: str, *, owner: str | None, jobs: JobStore) -> Job:
    """The job, once it has finished and its outputs are known; NotYet before."""
    job = await jobs.get_job(job_id, owner=owner)
    require_not_expired(job)
    if not job.state.terminal:
        raise NotYet(f"job {job.id} is {job.state.value}: its outputs are known once it finishes", retry_after=5)
    return job


async def output_link(
    *, jobs: JobStore, storage: ObjectStorage, job_id: str, owner: str | None, path: str, expires_in: int
) -> dict[str, Any]:
    """Presigned GET (saved under the output's base name) and HEAD URLs of one output of a finished job."""
    job = await finished_job(job_id, owner=owner, jobs=jobs)
    output = next((each for each in job.outputs if each.path == path), None)
    if output is None:
        raise NotFound(f"job {job.id} has no output {path!r}")
    filename = PurePosixPath(output.path).name
    url, expires_at = await run_in_threadpool(storage.presign_get, output.key, expires_in=expires_in, filename=filename)
    head_url, _ = await run_in_threadpool(storage.presign_head, output.key, expires_in=expires_in)
    return {
        "path": output.path,
        "url": url,
        "head_url": head_url,
        "expires_at": expires_at.isoformat(),
        "size": output.size,
        "sha256": output.sha256,
        "content_type": output.content_type,
    }


def render_output(request: Request, job_id: str, output: OutputFile) -> dict[str, Any]:
    """An output as listed, with the route that hands out its download link."""
    # Output paths are whatever the app wrote: quoted, so '?', '#' or '%' in a name stay part of the path.
    url = link(request, "job_outputs", job_id=job_id) + "/" + quote(output.path, safe="/")
    return output.model_dump(exclude={"key"}) | {"url": url}


async def list_outputs(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/outputs: every output of a finished job (409 before)."""
    job = await finished_job(
        request.path_params["job_id"], owner=principal(request).owner_filter, jobs=deps(request).stores.jobs
    )
    return JSONResponse({"job_id": job.id, "items": [render_output(request, job.id, o) for o in job.outputs]})


async def download(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/outputs/{path}[?redirect=1]."""
    d = deps(request)
    redirect = flag(request, "redirect")
    link = await output_link(
        jobs=d.stores.jobs,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        path=request.path_params["path"],
        expires_in=d.settings.presign_expiry_seconds,
    )
    return link_response(link, redirect=redirect)
