"""What the cluster is doing: workers, queue depths, jobs per app and queue."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.cluster import ClusterSummary, cluster_summary
from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import Resource
from shared.models import WorkerInfo, utcnow

resource = Resource("cluster")


class WorkerOut(Out):
    id: str
    service: str
    host: str
    pid: int
    concurrency: int
    busy: int
    queues: list[str]
    started: str
    last_heartbeat: str
    seconds_since_heartbeat: float
    alive: bool


class QueueDepth(Out):
    messages: int
    consumers: int


class JobCounts(Out):
    scope: Literal["all", "mine"]
    queued: int
    running: int
    by_app: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, int]] = Field(description="queue name (an admin's: OWNER_ID/name) -> state -> count")


class Cluster(Out):
    workers: list[WorkerOut]
    queues: dict[str, QueueDepth]
    jobs: JobCounts


def render_worker(worker: WorkerInfo, heartbeat_seconds: float) -> WorkerOut:
    """A worker as clients see it, with how long ago it last reported."""
    age = (utcnow() - worker.heartbeat).total_seconds()
    return WorkerOut(
        id=worker.id,
        service=worker.service,
        host=worker.host,
        pid=worker.pid,
        concurrency=worker.concurrency,
        busy=worker.busy,
        queues=worker.queues,
        started=worker.started.isoformat(),
        last_heartbeat=worker.heartbeat.isoformat(),
        seconds_since_heartbeat=round(age, 1),
        alive=worker.alive(heartbeat_seconds),
    )


def render_cluster(summary: ClusterSummary, heartbeat_seconds: float) -> Cluster:
    """The summary as clients see it: the job counts' scope says whose jobs they are."""
    jobs = summary.jobs
    return Cluster(
        workers=[render_worker(worker, heartbeat_seconds) for worker in summary.workers],
        queues={
            name: QueueDepth(messages=depth["messages"], consumers=depth["consumers"])
            for name, depth in summary.queues.items()
        },
        jobs=JobCounts(
            scope="all" if jobs.everyone else "mine",
            queued=jobs.queued,
            running=jobs.running,
            by_app=jobs.by_app,
            by_queue=jobs.by_queue,
        ),
    )


@resource.endpoint(
    "GET", "/cluster", summary="Workers, queue depths and active jobs (the caller's; an admin's: all)", answer=Cluster
)
async def cluster(request: Request) -> Cluster:
    """GET /v1/cluster: workers and queues for everyone; job counts of the caller's jobs (an admin's: all)."""
    d = deps(request)
    summary = await cluster_summary(
        workers=d.stores.workers, jobs=d.stores.jobs, broker=d.broker, owner=principal(request).owner_filter
    )
    return render_cluster(summary, d.settings.worker_heartbeat_seconds)
