"""What the cluster is doing: its workers, what its queues hold, and the active jobs a caller may count."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.models import JobState, WorkerInfo
from shared.store.jobs import ActiveCount, JobStore
from shared.store.workers import WorkerStore
from shared.tasks import PACKAGE_RESULTS, RUN_JOB


@dataclass(frozen=True)
class ActiveJobs:
    """QUEUED and RUNNING jobs counted in all, and per app and per queue by state."""

    everyone: bool  # everyone's jobs (an admin asked), or the caller's own
    queued: int
    running: int
    by_app: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, int]]  # everyone's: keyed OWNER_ID/queue, as users' queue names collide


@dataclass(frozen=True)
class ClusterSummary:
    """The workers as they last reported, each queue's messages and consumers, and the active jobs."""

    workers: list[WorkerInfo]
    queues: dict[str, dict[str, int]]
    jobs: ActiveJobs


def count_active(rows: list[ActiveCount], *, everyone: bool) -> ActiveJobs:
    """The counts the store found, summed in all and per app and per queue (OWNER_ID/queue for ``everyone``)."""
    by_app: dict[str, dict[str, int]] = {}
    by_queue: dict[str, dict[str, int]] = {}
    for row in rows:
        queue = f"{row.owner}/{row.queue}" if everyone else row.queue
        for counts, key in ((by_app, row.app), (by_queue, queue)):
            counts.setdefault(key, {})[row.state.value] = counts.get(key, {}).get(row.state.value, 0) + row.n
    return ActiveJobs(
        everyone=everyone,
        queued=sum(row.n for row in rows if row.state is JobState.QUEUED),
        running=sum(row.n for row in rows if row.state is JobState.RUNNING),
        by_app=by_app,
        by_queue=by_queue,
    )


async def cluster_summary(*, workers: WorkerStore, jobs: JobStore, broker: Broker, owner: str | None) -> ClusterSummary:
    """Workers and queues (everyone sees them all) and the active jobs of ``owner`` (None: everyone's)."""
    found = await workers.list_workers()
    queues = await run_in_threadpool(broker.queue_stats, [RUN_JOB, PACKAGE_RESULTS])
    rows = await jobs.count_active_jobs(owner=owner)
    return ClusterSummary(workers=found, queues=queues, jobs=count_active(rows, everyone=owner is None))
