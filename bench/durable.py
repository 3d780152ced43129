"""The durable baseline's side of a measurement: insert each job document, enqueue its id, read the actor's times.

The actor is ``bench.durable_baseline``; it runs in a worker of its own (``bench.worker``) on the same
RabbitMQ, Mongo stand-in and S3 stand-in as quern's services in the same bench run, in a database
(``durable``) and key prefix (``durable/``) of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
from pymongo import MongoClient

from bench.worker import Worker, running
from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Stack
from shared.models import new_id

BATCH = 1000  # documents per insert_many, as bench.throughput submits quern's jobs per POST /v1/jobs/batch


class Durable:
    """The durable worker and the sender's own Mongo client, which inserts each job before it is enqueued."""

    def __init__(self, stack: Stack, worker: Worker) -> None:
        self.worker = worker
        self.client: MongoClient[dict[str, Any]] = MongoClient(mongo_url(stack), tz_aware=True)
        self.jobs = self.client["durable"]["jobs"]

    def submit(self, count: int) -> None:
        """Insert ``count`` job documents (in batches) and enqueue each: the insert is the send time."""
        for first in range(0, count, BATCH):
            sent = time.time()
            docs = [document() for _ in range(min(BATCH, count - first))]
            self.jobs.insert_many(docs)
            for doc in docs:
                self.worker.broker.enqueue(self.message(doc["_id"], sent))

    def submit_one(self) -> None:
        """Insert one job document and enqueue it, stamped with the time just before the insert."""
        sent = time.time()
        doc = document()
        self.jobs.insert_one(doc)
        self.worker.broker.enqueue(self.message(doc["_id"], sent))

    def message(self, job_id: str, sent: float) -> dramatiq.Message[None]:
        """The actor's message for one job."""
        return dramatiq.Message(
            queue_name=self.worker.queue, actor_name="run_durably", args=(job_id, sent), kwargs={}, options={}
        )


def mongo_url(stack: Stack) -> str:
    return f"mongodb://127.0.0.1:{stack.ports.mongo}"


def document() -> dict[str, Any]:
    """A job document as small as a durable system can keep: id, state, app, creation time."""
    return {"_id": new_id(), "state": "QUEUED", "app": "true", "created": datetime.now(UTC)}


@contextmanager
def durable_worker(stack: Stack, work: Path, *, threads: int = 2) -> Iterator[Durable]:
    """A running durable baseline worker on ``stack``'s stores, stopped afterwards."""
    env = {
        "BENCH_MONGO_URL": mongo_url(stack),
        "BENCH_S3_URL": stack.s3_url,
        "BENCH_BUCKET": stack.bucket,
        "BENCH_S3_KEY": LOCAL_S3_KEY,
        "BENCH_S3_SECRET": LOCAL_S3_SECRET,
    }
    with running(stack, work, module="bench.durable_baseline", actor="run_durably", threads=threads, env=env) as w:
        durable = Durable(stack, w)
        try:
            yield durable
        finally:
            durable.client.close()


def latencies(stack: Stack, count: int, work: Path, *, warm_up: int) -> list[float]:
    """Insert -> actor start of ``count`` jobs sent one at a time on the idle stack (after ``warm_up`` more)."""
    with durable_worker(stack, work) as durable:
        for n in range(count + warm_up):
            durable.submit_one()
            durable.worker.wait_for(n + 1, timeout=30)
        return [start for start, _ in durable.worker.readings()[warm_up:]]


def seconds(stack: Stack, count: int, work: Path, *, threads: int) -> float:
    """Seconds from the first insert until the actor has finished ``count`` jobs submitted at once."""
    with durable_worker(stack, work, threads=threads) as durable:
        started = time.perf_counter()
        durable.submit(count)
        durable.worker.wait_for(count, timeout=600, pause=0.01)
        return time.perf_counter() - started
