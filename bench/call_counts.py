"""What a trivial job costs in store calls: Mongo commands by name and S3 requests by operation, per quern process.

Part of ``python -m bench``; alone: ``python -m bench.call_counts [--jobs N] [--idle-seconds S]``.

A stack of its own runs with ``QUERN_COUNT_CALLS`` set (``shared/call_counts.py``), so each service
writes its counts to a file. After a warm-up job, the stack idles for a while to measure the
background rate (heartbeats, scheduler passes, sweeps); then N jobs of the ``true`` app are submitted
one ``POST /v1/jobs`` each, and once every one of them has its archive (read from Mongo directly, so
that the waiting costs quern nothing) the counts are read again. Per job = (after - before - background
rate x window) / N. Beside it: the durable baseline's 3 Mongo commands (insert, claim, finish) and
1 S3 request (both logs in one PUT), which is what ``bench.durable_baseline`` does per job.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.harness import admin_client, bench_stack, row
from bench.latency import TRUE_APP
from devstack.stack import Stack

GOAL_MONGO = 8
GOAL_S3 = 4
DURABLE = {"mongo": 3, "s3": 1}  # bench.durable_baseline: insert, claim update, finish update; one PUT of both logs
SETTLE_SECONDS = 1.2  # > shared.call_counts.FLUSH_SECONDS: the files have caught up
Counts = dict[tuple[str, str, str], float]  # (kind, process, name) -> calls


def read_counts(directory: Path) -> Counts:
    """Every process's counts so far, summed over processes of the same name."""
    total: Counter[tuple[str, str, str]] = Counter()
    for path in directory.glob("*.json"):
        written = json.loads(path.read_text())
        process = written["process"].removeprefix("services.")
        for kind in ("mongo", "s3"):
            for name, calls in written.get(kind, {}).items():
                total[kind, process, name] += calls
    return dict(total)


def snapshot(directory: Path) -> tuple[Counts, float]:
    """The counts once the files have caught up, and when."""
    time.sleep(SETTLE_SECONDS)
    return read_counts(directory), time.monotonic()


def difference(after: Counts, before: Counts) -> Counts:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def run_jobs(stack: Stack, client: Any, count: int) -> list[str]:
    """Submit ``count`` trivial jobs back to back; their ids."""
    ids = []
    for _ in range(count):
        answer = client.post("/v1/jobs", json={"app": TRUE_APP["name"]})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


def wait_for_archives(stack: Stack, ids: list[str], *, timeout: float = 600) -> None:
    """Until every job of ``ids`` has SUCCEEDED and has its archive, looked up in Mongo by this process."""
    client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{stack.ports.mongo}")
    with client:
        jobs = client[stack.database]["jobs"]
        deadline = time.monotonic() + timeout
        match = {"_id": {"$in": ids}, "state": "SUCCEEDED", "archive": {"$ne": None}}
        while jobs.count_documents(match) < len(ids):
            assert jobs.count_documents({"_id": {"$in": ids}, "state": "FAILED"}) == 0, "a trivial job failed"
            assert time.monotonic() < deadline, f"the archives of {len(ids)} jobs were not ready in {timeout} s"
            time.sleep(0.1)


def per_job(jobs: Counts, idle: Counts, *, window: float, idle_window: float, count: int) -> Counts:
    """Calls per job: those of the jobs' window less the background rate over it."""
    keys = set(jobs) | set(idle)
    net = {key: (jobs.get(key, 0) - idle.get(key, 0) * window / idle_window) / count for key in keys}
    return {key: value for key, value in net.items() if round(value, 2) != 0}


def grouped(counts: Counts, kind: str, by: Callable[[str, str], str]) -> dict[str, float]:
    """The ``kind`` counts summed by ``by(process, name)``, largest first."""
    sums: dict[str, float] = {}
    for (k, process, name), value in counts.items():
        if k == kind:
            sums[by(process, name)] = sums.get(by(process, name), 0.0) + value
    return {name: round(value, 2) for name, value in sorted(sums.items(), key=lambda item: -item[1])}


def command(process: str, name: str) -> str:
    """``find`` of ``find:jobs``: the command alone."""
    return name.split(":")[0]


def both(process: str, name: str) -> str:
    return f"{process} {name}"


def table(counts: Counts, kind: str) -> dict[str, dict[str, float]]:
    """process -> name -> calls per job."""
    out: dict[str, dict[str, float]] = {}
    for (k, process, name), value in sorted(counts.items(), key=lambda item: -item[1]):
        if k == kind:
            out.setdefault(process, {})[name] = round(value, 2)
    return out


def measure(work: Path, count: int, *, idle_seconds: float) -> list[dict[str, Any]]:
    """The two rows: Mongo commands and S3 requests per trivial job, submit to archive ready."""
    directory = work / "counts"
    with bench_stack(work, QUERN_COUNT_CALLS=str(directory)) as stack, admin_client(stack) as client:
        answer = client.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        wait_for_archives(stack, run_jobs(stack, client, 1))  # warm-up: first-use reads, index builds
        start, started = snapshot(directory)
        time.sleep(idle_seconds)
        idle_end, idled = snapshot(directory)
        ids = run_jobs(stack, client, count)
        wait_for_archives(stack, ids)
        end, ended = snapshot(directory)
    idle = difference(idle_end, start)
    net = per_job(difference(end, idle_end), idle, window=ended - idled, idle_window=idled - started, count=count)
    rows = []
    for kind, label, goal in (("mongo", "Mongo commands", GOAL_MONGO), ("s3", "S3 requests", GOAL_S3)):
        total = sum(value for key, value in net.items() if key[0] == kind)
        by_name, by_process = grouped(net, kind, command), table(net, kind)
        print(f"  {label} per job: {round(total, 2)}; by name {by_name}")
        for process, calls in by_process.items():
            print(f"    {process}: {calls}")
        background = {name: round(value / (idled - started), 2) for name, value in grouped(idle, kind, both).items()}
        rows.append(
            row(
                f"{label} per trivial job ({count} jobs)",
                total,
                DURABLE[kind],
                DURABLE[kind] / total if total else 0.0,
                f"<= {goal}",
                total <= goal,
                by_name=by_name,
                by_process=by_process,
                background_per_second=background,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.call_counts", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quern-calls-") as work:
        for entry in measure(Path(work), args.jobs, idle_seconds=args.idle_seconds):
            print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
