"""Trivial-job throughput: N jobs of an app that runs ``true``, submitted through the API, until all SUCCEEDED,
beside a bare Dramatiq actor that fork/execs ``true`` for N messages on the same RabbitMQ, and the durable
baseline (``bench.durable_baseline``: insert, claim, run, one log PUT, finish) on the same stores, each with
the runner's process and thread counts (one process, ``RUNNER_CONCURRENCY`` threads).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import durable
from bench.harness import admin_client, row
from bench.latency import TRUE_APP
from bench.worker import bare_worker
from devstack.stack import Stack

GOAL_RATIO = 0.5
GOAL_PER_SECOND = 200.0
GOAL_DURABLE_RATIO = 0.5  # issue 19: at least half the durable baseline's jobs per second
BATCH = 1000  # jobs per POST /v1/jobs/batch
# Counting a queue's jobs costs the Mongo stand-in time in proportion to them: look rarely, not to slow the stack.
POLL_SECONDS = 0.5


def quern_seconds(stack: Stack, count: int, *, timeout: float = 1800) -> float:
    """Seconds from the first submission to the last of ``count`` jobs SUCCEEDED."""
    with admin_client(stack) as client:
        answer = client.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        queue = client.post("/v1/queues", json={"name": f"bench-{time.monotonic_ns()}"}).json()
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            jobs = [{"app": TRUE_APP["name"], "queue": queue["name"]}] * min(BATCH, count - first)
            submitted = client.post("/v1/jobs/batch", json={"jobs": jobs}, timeout=600)
            assert submitted.status_code == 201, submitted.text
        deadline = time.monotonic() + timeout
        while (counts := client.get(queue["url"]).json()["counts"]).get("SUCCEEDED", 0) < count:
            assert counts.get("FAILED", 0) == 0, counts
            assert time.monotonic() < deadline, f"only {counts} after {timeout} s"
            time.sleep(POLL_SECONDS)
        return time.perf_counter() - started


def bare_seconds(stack: Stack, count: int, work: Path, *, threads: int) -> float:
    """Seconds for the bare actor to start and finish ``count`` messages enqueued at once."""
    with bare_worker(stack, work, threads=threads) as bare:
        started = time.perf_counter()
        for _ in range(count):
            bare.send()
        bare.wait_for(count, timeout=600, pause=0.01)
        return time.perf_counter() - started


def measure(stack: Stack, count: int, work: Path, *, threads: int = 2) -> list[dict[str, Any]]:
    """The throughput row: jobs per second, quern against the bare actor."""
    bare = count / bare_seconds(stack, count, work, threads=threads)
    kept = count / durable.seconds(stack, count, work, threads=threads)
    ours = count / quern_seconds(stack, count)
    goal = f">= {GOAL_RATIO:g}x, {GOAL_PER_SECOND:g}/s"
    met = ours >= GOAL_RATIO * bare and ours >= GOAL_PER_SECOND
    return [
        row(f"trivial jobs per second ({count} jobs)", ours, bare, ours / bare, goal, met),
        row(
            f"trivial jobs per second vs durable ({count} jobs)",
            ours,
            kept,
            ours / kept,
            f">= {GOAL_DURABLE_RATIO:g}x durable",
            ours >= GOAL_DURABLE_RATIO * kept,
        ),
    ]
