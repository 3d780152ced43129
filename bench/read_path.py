"""Read path: ``GET /v1/jobs/{id}`` requests per second under concurrent load, beside a bare Starlette route
(``bench.bare_read``) doing the same Mongo ``find_one`` on the same database, each served by one
uvicorn process and loaded by ``bench.load`` in a process of its own. Rounds alternate between
the two, and the best round of each counts (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import admin_client, row
from bench.latency import TRUE_APP
from devstack.processes import free_port, wait_until
from devstack.stack import Stack

GOAL_RATIO = 0.7
CONCURRENCY = 16


def load(url: str, seconds: float, token: str | None = None) -> float:
    """Requests per second ``url`` answered, from a load generator in another process."""
    command = [sys.executable, "-m", "bench.load", url, str(seconds), str(CONCURRENCY), *([token] if token else [])]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 120)
    result = json.loads(done.stdout)
    assert result["failed"] == 0, result
    return float(result["requests"] / result["seconds"])


def measure(stack: Stack, work: Path, *, seconds: float = 5.0, rounds: int = 3) -> list[dict[str, Any]]:
    """The read-path row: requests per second, quern against the bare route."""
    with admin_client(stack) as client:
        answer = client.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        job = client.post("/v1/jobs", json={"app": TRUE_APP["name"]}).json()
        token = client.headers["Authorization"].removeprefix("Bearer ")
    port = free_port()
    env = os.environ | {
        "BENCH_MONGO_URL": f"mongodb://127.0.0.1:{stack.ports.mongo}",
        "BENCH_DATABASE": stack.database,
        "BENCH_PORT": str(port),
    }
    log = (work / "bare_read.log").open("w")
    bare = subprocess.Popen([sys.executable, "-m", "bench.bare_read"], env=env, stdout=log, stderr=log)
    try:
        bare_url = f"http://127.0.0.1:{port}/jobs/{job['id']}"
        wait_until(lambda: _answers(bare_url), timeout=30, what="the bare read server")
        ours_url = f"{stack.gateway_url}/v1/jobs/{job['id']}"
        ours, theirs = [], []
        for _ in range(rounds):
            theirs.append(load(bare_url, seconds))
            ours.append(load(ours_url, seconds, token))
    finally:
        bare.terminate()
        bare.wait(timeout=30)
        log.close()
    best, base = max(ours), max(theirs)
    return [
        row(
            f"GET /v1/jobs/{{id}} per second ({CONCURRENCY} clients)",
            best,
            base,
            best / base,
            f">= {GOAL_RATIO:g}x",
            best >= GOAL_RATIO * base,
            rounds={"quern": [round(x) for x in ours], "baseline": [round(x) for x in theirs]},
        )
    ]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
