"""What the cluster is doing: workers, queue depths, jobs per app and queue."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.native.schemas import Cluster
from shared.models import JobState, WorkerInfo, utcnow
from shared.tasks import PACKAGE_RESULTS, RUN_JOB

resource = Resource("cluster")


def render_worker(worker: WorkerInfo, heartbeat_seconds: float) -> dict[str, Any]:
    """A worker as clients see it, with how long ago it last reported."""
    age = (utcnow() - worker.heartbeat).total_seconds()
    return {
        "id": worker.id,
        "service": worker.service,
        "host": worker.host,
        "pid": worker.pid,
        "concurrency": worker.concurrency,
        "busy": worker.busy,
        "queues": worker.queues,
        "started": worker.started.isoformat(),
        "last_heartbeat": worker.heartbeat.isoformat(),
        "seconds_since_heartbeat": round(age, 1),
        "alive": worker.alive(heartbeat_seconds),
    }


@resource.endpoint(
    "GET", "/cluster", summary="Workers, queue depths and active jobs (the caller's; an admin's: all)", answer=Cluster
)
async def cluster(request: Request) -> Response:
    """GET /v1/cluster: workers and queues for everyone; job counts of the caller's jobs (an admin's: all)."""
    d, who = deps(request), principal(request)
    workers = await d.stores.workers.list_workers()
    queues = await run_in_threadpool(d.broker.queue_stats, [RUN_JOB, PACKAGE_RESULTS])
    rows = await d.stores.jobs.count_active_jobs(owner=who.owner_filter)
    by_app: dict[str, dict[str, int]] = {}
    by_queue: dict[str, dict[str, int]] = {}
    for row in rows:
        queue = f"{row.owner}/{row.queue}" if who.is_admin else row.queue  # an admin sees every user's queues
        for counts, key in ((by_app, row.app), (by_queue, queue)):
            counts.setdefault(key, {})[row.state.value] = counts.get(key, {}).get(row.state.value, 0) + row.n
    return JSONResponse(
        {
            "workers": [render_worker(worker, d.settings.worker_heartbeat_seconds) for worker in workers],
            "queues": queues,
            "jobs": {
                "scope": "all" if who.is_admin else "mine",
                "queued": sum(row.n for row in rows if row.state is JobState.QUEUED),
                "running": sum(row.n for row in rows if row.state is JobState.RUNNING),
                "by_app": by_app,
                "by_queue": by_queue,
            },
        }
    )
