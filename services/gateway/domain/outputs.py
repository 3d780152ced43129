"""A job's outputs, each downloadable by itself through presigned URLs once the job has finished."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from starlette.concurrency import run_in_threadpool

from services.gateway.domain.retention import require_not_expired
from shared.errors import NotFound, NotYet
from shared.models import Job, OutputFile
from shared.storage import ObjectStorage
from shared.store.jobs import JobStore


@dataclass(frozen=True)
class OutputDownload:
    """Presigned GET and HEAD URLs of one output, and when they stop working."""

    output: OutputFile
    url: str
    head_url: str
    expires_at: datetime


async def finished_job(job_id: str, *, owner: str | None, jobs: JobStore) -> Job:
    """The job, once it has finished and its outputs are known; NotYet before."""
    job = await jobs.get_job(job_id, owner=owner)
    require_not_expired(job)
    if not job.state.terminal:
        raise NotYet(f"job {job.id} is {job.state.value}: its outputs are known once it finishes", retry_after=5)
    return job


async def output_link(
    *, jobs: JobStore, storage: ObjectStorage, job_id: str, owner: str | None, path: str, expires_in: int
) -> OutputDownload:
    """Presigned GET (saved under the output's base name) and HEAD URLs of one output of a finished job."""
    job = await finished_job(job_id, owner=owner, jobs=jobs)
    output = next((each for each in job.outputs if each.path == path), None)
    if output is None:
        raise NotFound(f"job {job.id} has no output {path!r}")
    filename = PurePosixPath(output.path).name
    url, expires_at = await run_in_threadpool(storage.presign_get, output.key, expires_in=expires_in, filename=filename)
    head_url, _ = await run_in_threadpool(storage.presign_head, output.key, expires_in=expires_in)
    return OutputDownload(output=output, url=url, head_url=head_url, expires_at=expires_at)
