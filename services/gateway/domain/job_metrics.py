"""The gateway's metrics of jobs: those submitted, and the active jobs and queue depths as last counted.

Counting is done by one task per gateway, every ``METRICS_REFRESH_SECONDS``, not per scrape: a
scrape reads what the last count found, however many Prometheus servers scrape and however
often. A count is the aggregate ``GET /v1/cluster`` runs for an admin (QUEUED and RUNNING jobs
only, by the jobs' state index) and one look at RabbitMQ's two queues over the broker's probe
connection. A count that fails keeps the last figures, says so in the log and in
``quern_metrics_count_errors_total``; ``quern_metrics_counted_timestamp_seconds`` says how old
the figures are. Every gateway counts the same jobs: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import structlog
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.errors import AppError
from shared.models import JobState
from shared.store.jobs import JobStore
from shared.tasks import PACKAGE_RESULTS, RUN_JOB

log = structlog.get_logger()
SUBMITTED = Counter("quern_jobs_submitted", "Jobs accepted, by app (one per job of a batch; TES tasks too)", ["app"])
COUNT_ERRORS = Counter("quern_metrics_count_errors", "Counts of jobs or queues that failed, by source", ["source"])


class ActiveJobGauges(Collector):
    """QUEUED and RUNNING jobs by app, and each RabbitMQ queue's messages and consumers, as last counted."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], int] = {}
        self._queues: dict[str, dict[str, int]] = {}
        self._counted: float | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "quern_jobs", "Active jobs by state (QUEUED, RUNNING) and app", labels=["state", "app"]
        )
        for (state, app), n in sorted(self._jobs.items()):
            jobs.add_metric([state, app], n)
        messages = GaugeMetricFamily("quern_queue_messages", "Messages ready in a RabbitMQ queue", labels=["queue"])
        consumers = GaugeMetricFamily("quern_queue_consumers", "Consumers of a RabbitMQ queue", labels=["queue"])
        for queue, depth in sorted(self._queues.items()):
            messages.add_metric([queue], depth["messages"])
            consumers.add_metric([queue], depth["consumers"])
        yield from (jobs, messages, consumers)
        if self._counted is not None:
            yield GaugeMetricFamily(
                "quern_metrics_counted_timestamp_seconds",
                "When the job and queue gauges were last counted",
                self._counted,
            )

    async def count(self, *, jobs: JobStore, broker: Broker) -> None:
        """Count the active jobs and the queues now; a source that fails keeps its last figures."""
        try:
            rows = await jobs.count_active_jobs(owner=None)
        except AppError as exc:
            COUNT_ERRORS.labels("mongo").inc()
            log.warning("metrics_count_failed", source="mongo", detail=exc.detail)
        else:
            # An app seen before stays, at 0 once it has no active jobs: a gauge that vanished would read as unknown.
            counts = dict.fromkeys(self._jobs, 0)
            for row in rows:
                counts[(row.state.value, row.app)] = counts.get((row.state.value, row.app), 0) + row.n
            for state in (JobState.QUEUED, JobState.RUNNING):
                for app in {app for _, app in counts}:
                    counts.setdefault((state.value, app), 0)
            self._jobs = counts
        try:
            self._queues = await run_in_threadpool(broker.queue_stats, [RUN_JOB, PACKAGE_RESULTS])
        except AppError as exc:
            COUNT_ERRORS.labels("rabbitmq").inc()
            log.warning("metrics_count_failed", source="rabbitmq", detail=exc.detail)
        self._counted = time.time()

    async def count_forever(self, *, jobs: JobStore, broker: Broker, every: float) -> None:
        """Count every ``every`` seconds until cancelled."""
        while True:
            await self.count(jobs=jobs, broker=broker)
            await asyncio.sleep(every)


# One per process, as the registry is: every app this process serves (tests make several) updates the same.
ACTIVE_JOBS = ActiveJobGauges()
REGISTRY.register(ACTIVE_JOBS)
