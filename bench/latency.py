"""Latency on an idle stack: submit -> RUNNING and submit -> SUCCEEDED of an app that runs ``true``,
beside a bare Dramatiq actor's enqueue -> start (and -> end, after fork/exec of ``true``) on the same RabbitMQ.

quern's figures come from the job's own timestamps (``created``, ``started``, ``finished``, all
taken on this machine), the baseline's from the actor itself, so neither includes polling.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import durable
from bench.harness import admin_client, percentile, row
from bench.worker import bare_worker
from devstack.stack import Stack

GOAL_RATIO = 3.0
GOAL_MS = 25.0
GOAL_DURABLE_RATIO = 2.0  # issue 19: submit -> RUNNING p50 <= 2x the durable baseline's insert -> start
WARM_UP = 5  # messages that warm a baseline's worker up and are not counted
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


def bare_latencies(stack: Stack, count: int, work: Path) -> tuple[list[float], list[float]]:
    """The same through a bare Dramatiq actor in a worker process of its own, one message at a time."""
    with bare_worker(stack, work) as bare:
        for n in range(count + WARM_UP):  # the first few warm the worker up and are not counted
            bare.send()
            bare.wait_for(n + 1, timeout=30)
        lines = bare.readings()[WARM_UP:]
    return [start for start, _ in lines], [end for _, end in lines]


def measure(stack: Stack, count: int, work: Path) -> list[dict[str, Any]]:
    """Latency rows on a running, idle ``stack``: p50 and p99 of submit -> RUNNING and submit -> SUCCEEDED."""
    bare_start, bare_end = bare_latencies(stack, count, work)
    durable_start = durable.latencies(stack, count, work, warm_up=WARM_UP)
    running, done = quern_latencies(stack, count)
    mine, base = percentile(running, 50) * 1000, percentile(durable_start, 50) * 1000
    goal = f"<= {GOAL_DURABLE_RATIO:g}x durable"
    rows = [
        row(
            "submit -> RUNNING p50 vs durable insert -> start (ms)",
            mine,
            base,
            base / mine if mine else 0.0,
            goal,
            mine <= GOAL_DURABLE_RATIO * base,
            durable_start_p99_ms=round(percentile(durable_start, 99) * 1000, 2),
        )
    ]
    for label, ours, theirs in (("RUNNING", running, bare_start), ("SUCCEEDED", done, bare_end)):
        for q in (50, 99):
            mine, base = percentile(ours, q) * 1000, percentile(theirs, q) * 1000
            gated = label == "RUNNING" and q == 50
            goal = f"<= {GOAL_RATIO:g}x, {GOAL_MS:g} ms" if gated else "reported"
            met = (mine <= GOAL_RATIO * base and mine <= GOAL_MS) if gated else True
            rows.append(row(f"submit -> {label} p{q} (ms)", mine, base, base / mine if mine else 0.0, goal, met))
    return rows
