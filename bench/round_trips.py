"""The Mongo round trips between a submission and its job's RUNNING, each timed on the stack's Mongo.

``python -m bench.round_trips [--reps N]`` starts a stack of its own, writes 1,000 ended jobs
into a database of its own there, and times every store call the submit -> RUNNING path makes,
in the order it makes them: the gateway's insert, the dispatcher's pass, the runner's read of
the job and its claim (the runner reads the paused queues at most once a second, not per job).
The sum is the floor that the path's latency sits on, before any HTTP or RabbitMQ.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.harness import bench_stack
from shared.models import Job, JobState, new_id, utcnow
from shared.store import Stores
from shared.store.database import Database


def job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "id": new_id(),
        "owner": "bench",
        "app": "bench-true",
        "app_version": "1.0.0",
        "params": {},
        "inputs": {},
        "timeout_seconds": 60,
        "created": utcnow(),
    }
    return Job(**(fields | overrides))


async def timings(url: str, reps: int) -> list[tuple[str, str, float]]:
    """(who, call, mean ms) for each call on the path."""
    stores = Stores.over(Database(AsyncMongoClient(url, tz_aware=True), f"round_trips_{new_id()}"))
    await stores.prepare()
    for _ in range(1000):
        await stores.jobs.insert_job(job(state=JobState.SUCCEEDED, finished=utcnow()))
    queued = [job() for _ in range(reps)]
    rows: list[tuple[str, str, float]] = []

    async def timed(who: str, call: str, make: Callable[[int], Awaitable[Any]]) -> None:
        started = time.perf_counter()
        for n in range(reps):
            await make(n)
        rows.append((who, call, (time.perf_counter() - started) / reps * 1000))

    lease = utcnow() + timedelta(minutes=1)
    jobs, dispatch = stores.jobs, stores.dispatch
    await timed("gateway", "insert_job", lambda n: jobs.insert_job(queued[n]))
    await timed(
        "dispatcher",
        "dispatch_view (live runners, in flight, user limits, dependencies)",
        lambda n: dispatch.dispatch_view(alive_after=utcnow() - timedelta(seconds=30)),
    )
    await timed(
        "dispatcher",
        "dispatch_heads",
        lambda n: dispatch.dispatch_heads(per_owner=20),
    )
    await timed("dispatcher", "lease_dispatches", lambda n: dispatch.lease_dispatches([queued[n].id], until=lease))
    await timed("dispatcher", "mark_dispatched", lambda n: dispatch.mark_dispatched([queued[n].id], lease=lease))
    read: list[Job] = []

    async def get_job(n: int) -> None:
        read.append(await jobs.get_job(queued[n].id))

    await timed("runner", "get_job", get_job)
    await timed("runner", "claim_job", lambda n: jobs.claim_job(read[n], worker="w"))
    await stores.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trips", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quern-trips-") as work, bench_stack(Path(work)) as stack:
        rows = asyncio.run(timings(f"mongodb://127.0.0.1:{stack.ports.mongo}", args.reps))
    for who, call, ms in rows:
        print(f"{who:10} {call:36} {ms:6.2f} ms")
    print(f"{'':10} {'sum':36} {sum(ms for _, _, ms in rows):6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
