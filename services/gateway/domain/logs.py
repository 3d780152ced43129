"""A job's stored logs, a byte range at a time; live lines come as events."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from services.gateway.domain.retention import require_not_expired
from shared.errors import NotFound, NotYet
from shared.storage import ObjectStorage
from shared.store.jobs import JobStore


@dataclass(frozen=True)
class LogExcerpt:
    """Bytes of a stored log as text: where they start, the whole log's size, where the next ones start."""

    name: str
    offset: int
    size: int
    next_offset: int
    text: str


async def log_slice(
    *, jobs: JobStore, storage: ObjectStorage, job_id: str, owner: str | None, name: str, start: int, length: int
) -> LogExcerpt:
    """Bytes ``start``.. of the job's ``name`` log (a negative start counts from the end), decoded as UTF-8."""
    job = await jobs.get_job(job_id, owner=owner)
    require_not_expired(job)
    key = job.logs.get(name)
    if key is None:
        if not job.state.terminal:
            raise NotYet(
                f"job {job.id} is {job.state.value}: its logs are stored when it ends; "
                f"its events carry the live lines meanwhile",
                retry_after=5,
            )
        raise NotFound(f"job {job.id} has no {name} log")
    data, size = await run_in_threadpool(storage.read_range, key, start=start, length=length)
    offset = max(0, size + start) if start < 0 else min(start, size)
    return LogExcerpt(
        name=name,
        offset=offset,
        size=size,
        next_offset=offset + len(data),
        text=data.decode("utf-8", errors="replace"),
    )
