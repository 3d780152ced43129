"""A job's full logs, a byte range at a time (OpenQuake's log slices); live lines come as events."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.params import integer
from services.gateway.retention import require_not_expired
from services.gateway.state import deps
from shared.errors import NotFound, NotYet
from shared.storage import ObjectStorage
from shared.store.jobs import JobStore

DEFAULT_LENGTH = 64 * 1024
MAX_LENGTH = 1 * 2**20


async def log_slice(
    *, jobs: JobStore, storage: ObjectStorage, job_id: str, owner: str | None, name: str, start: int, length: int
) -> dict[str, Any]:
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
    return {
        "name": name,
        "offset": offset,
        "size": size,
        "next_offset": offset + len(data),
        "text": data.decode("utf-8", errors="replace"),
    }


async def read(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/logs/{name}?offset=&length=."""
    d = deps(request)
    start = integer(request, "offset", 0, low=-(2**40), high=2**40)
    length = integer(request, "length", DEFAULT_LENGTH, low=1, high=MAX_LENGTH)
    body = await log_slice(
        jobs=d.stores.jobs,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
        name=request.path_params["name"],
        start=start,
        length=length,
    )
    return JSONResponse(body)
