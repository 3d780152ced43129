"""What every measurement shares: a stack of its own, the row format, the table, and ``bench/results.json``.

A row is one figure: quern's value beside a bare baseline measured in the same run, the ratio
that matters (oriented so that higher is better), the goal and whether it was met.
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from devstack.processes import ensure_rabbitmq, free_port
from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Ports, Stack

RESULTS = Path(__file__).parent / "results.json"


def row(
    figure: str, quern: float, baseline: float, ratio: float, goal: str, met: bool, **detail: Any
) -> dict[str, Any]:
    """One line of the table."""
    entry: dict[str, Any] = {
        "figure": figure,
        "quern": round(quern, 2),
        "baseline": round(baseline, 2),
        "ratio": round(ratio, 2),
        "goal": goal,
        "met": bool(met),
    }
    return entry | ({"detail": detail} if detail else {})


@contextmanager
def bench_stack(work: Path, **env: str) -> Iterator[Stack]:
    """A whole stack on free ports with its own namespace, database and bucket; stopped afterwards."""
    ensure_rabbitmq()
    stack = Stack(
        state_dir=work / f"stack-{uuid.uuid4().hex[:6]}",
        ports=Ports(s3=free_port(), mongo=free_port(), gateway=free_port()),
        namespace=f"quern-bench-{uuid.uuid4().hex[:8]}",
        database="quern_bench",
        bucket="quern-bench",
        extra_env=env,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def s3_client(stack: Stack) -> Any:
    """A boto3 client on the stack's S3 stand-in, for the baselines."""
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_S3_KEY,
        aws_secret_access_key=LOCAL_S3_SECRET,
    )


def admin_client(stack: Stack) -> httpx.Client:
    """An HTTP client logged in as the stack's admin."""
    body = {"username": stack.admin_username, "password": stack.admin_password}
    answer = httpx.post(f"{stack.gateway_url}/v1/auth/login", json=body, timeout=30)
    answer.raise_for_status()
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    return httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=120)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def report(rows: list[dict[str, Any]], path: Path = RESULTS) -> str:
    """Print the table, write ``path``, and return the closing line ``bench: goals met K/N``."""
    width = max(len(entry["figure"]) for entry in rows)
    print(f"{'figure':{width}} {'quern':>10} {'baseline':>10} {'ratio':>7}  {'goal':>16}  met")
    for entry in rows:
        print(
            f"{entry['figure']:{width}} {entry['quern']:>10} {entry['baseline']:>10} {entry['ratio']:>7}  "
            f"{entry['goal']:>16}  {'yes' if entry['met'] else 'NO'}"
        )
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return f"bench: goals met {sum(entry['met'] for entry in rows)}/{len(rows)}"
