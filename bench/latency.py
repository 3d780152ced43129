"""Latency on an idle stack: submit -> RUNNING and submit -> SUCCEEDED of an app that runs ``true``,
beside a bare Dramatiq actor's enqueue -> start (and -> end, after fork/exec of ``true``) on the same RabbitMQ.

quern's figures come from the job's own timestamps (``created``, ``started``, ``finished``, all
taken on this machine), the baseline's from the actor itself, so neither includes polling.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.harness import admin_client, percentile, row
from devstack.stack import Stack

GOAL_RATIO = 3.0
GOAL_MS = 25.0
TRUE_APP = {
    "name": "bench-true",
    "version": "1.0.0",
    "description": "Runs true: the smallest job there is.",
    "command": ["/bin/true"],
    "parameters": {"type": "object", "additionalProperties": False, "properties": {}},
    "inputs": {},
    "outputs": ["*"],
    "timeout": {"default": 60, "max": 60},
    "limits": {"memory_mb": 256, "cpu_seconds": 10, "file_size_mb": 1, "open_files": 64},
}


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def quern_latencies(stack: Stack, count: int) -> tuple[list[float], list[float]]:
    """Submit ``count`` jobs one after another on the idle stack; (submit -> RUNNING, submit -> SUCCEEDED) each."""
    with admin_client(stack) as client:
        answer = client.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        running, done = [], []
        for _ in range(count):
            job = client.post("/v1/jobs", json={"app": "bench-true"}).json()
            while (job := client.get(f"/v1/jobs/{job['id']}").json())["state"] in ("QUEUED", "RUNNING"):
                time.sleep(0.005)
            assert job["state"] == "SUCCEEDED", job
            running.append(_seconds(job["created"], job["started"]))
            done.append(_seconds(job["created"], job["finished"]))
    return running, done


class Bare:
    """A bare Dramatiq worker process on the stack's RabbitMQ, and the readings its actor wrote."""

    def __init__(self, stack: Stack, work: Path, threads: int) -> None:
        self.queue, self.out = f"quern-bench-bare-{uuid.uuid4().hex[:6]}", work / f"bare-{uuid.uuid4().hex[:6]}.txt"
        self.out.write_text("")
        env = os.environ | {
            "BENCH_RABBITMQ_URL": stack.rabbitmq_url,
            "BENCH_QUEUE": self.queue,
            "BENCH_OUT": str(self.out),
        }
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.bare_dramatiq",
            "--processes",
            "1",
            "--threads",
            str(threads),
        ]
        self.worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.broker = RabbitmqBroker(url=stack.rabbitmq_url)

    def send(self) -> None:
        """Enqueue one message stamped with the time now."""
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue, actor_name="run_true", args=(time.time(),), kwargs={}, options={}
        )
        self.broker.enqueue(message)

    def readings(self) -> list[tuple[float, float]]:
        """(enqueue -> start, enqueue -> end) of every message done so far."""
        assert self.worker.poll() is None, "the bare worker died"
        return [(float(a), float(b)) for a, b in (line.split() for line in self.out.read_text().splitlines())]

    def close(self) -> None:
        self.broker.close()
        self.worker.terminate()
        self.worker.wait(timeout=30)


@contextmanager
def bare_worker(stack: Stack, work: Path, *, threads: int = 2) -> Iterator[Bare]:
    """A running ``Bare`` worker, stopped afterwards."""
    bare = Bare(stack, work, threads)
    try:
        yield bare
    finally:
        bare.close()


def bare_latencies(stack: Stack, count: int, work: Path) -> tuple[list[float], list[float]]:
    """The same through a bare Dramatiq actor in a worker process of its own, one message at a time."""
    with bare_worker(stack, work) as bare:
        for n in range(count + 5):  # the first few warm the worker up and are not counted
            bare.send()
            deadline = time.monotonic() + 30
            while len(bare.readings()) <= n:
                assert time.monotonic() < deadline, "the bare worker does not answer"
                time.sleep(0.002)
        lines = bare.readings()[5:]
    return [start for start, _ in lines], [end for _, end in lines]


def measure(stack: Stack, count: int, work: Path) -> list[dict[str, Any]]:
    """Latency rows on a running, idle ``stack``: p50 and p99 of submit -> RUNNING and submit -> SUCCEEDED."""
    bare_start, bare_end = bare_latencies(stack, count, work)
    running, done = quern_latencies(stack, count)
    rows = []
    for label, ours, theirs in (("RUNNING", running, bare_start), ("SUCCEEDED", done, bare_end)):
        for q in (50, 99):
            mine, base = percentile(ours, q) * 1000, percentile(theirs, q) * 1000
            gated = label == "RUNNING" and q == 50
            goal = f"<= {GOAL_RATIO:g}x, {GOAL_MS:g} ms" if gated else "reported"
            met = (mine <= GOAL_RATIO * base and mine <= GOAL_MS) if gated else True
            rows.append(row(f"submit -> {label} p{q} (ms)", mine, base, base / mine if mine else 0.0, goal, met))
    return rows
