"""Scenario: a rolling restart. Every runner in turn gets SIGTERM while jobs, some with dependencies, run.

A runner told to stop takes no more jobs, lets its running ones go on for ``DRAIN_SECONDS``, gives
each app ``APP_GRACE_SECONDS`` after SIGTERM, and hands what is still running back to the queue.
Nothing may end FAILED because of the restart, and dependents of a preempted job run once it
succeeded. The jobs longer than the drain are the ones preempted.
"""

from __future__ import annotations

import time

import httpx

from devstack.chaos.runners import start, stop_gracefully
from devstack.processes import Process, wait_until

LONG_SECONDS = 8  # longer than the chaos stack's drain (3 s) plus grace (2 s): these are preempted


def submit_workload(api: httpx.Client, app: str, jobs: int) -> list[str]:
    """``jobs`` jobs: one in seven runs longer than the drain, the next one depends on it, the rest are short."""
    submitted: list[str] = []
    last_long: str | None = None
    for i in range(jobs):
        body: dict[str, object] = {"app": app, "params": {"seconds": 0.2 + (i % 5) * 0.2}}
        if i % 7 == 0:
            body["params"] = {"seconds": LONG_SECONDS}
        elif i % 7 == 1 and last_long is not None:
            body["depends_on"] = [last_long]
        answer = api.post("/v1/jobs", json=body)
        answer.raise_for_status()
        submitted.append(answer.json()["id"])
        if i % 7 == 0:
            last_long = submitted[-1]
    return submitted


def rolling_restart(api: httpx.Client, app: str, runners: list[Process], jobs: int) -> tuple[list[str], list[float]]:
    """Submit the workload, then stop and start each runner in turn while it runs; the ids and each stop's seconds."""
    submitted = submit_workload(api, app, jobs)

    def one_running() -> bool:
        return bool(api.get("/v1/jobs", params={"state": "RUNNING", "limit": 1}).json()["items"])

    wait_until(one_running, "a job of the rolling restart to start", timeout=60)
    time.sleep(LONG_SECONDS / 2)  # long jobs are mid-run on every runner now
    stops = []
    for process in runners:
        stops.append(stop_gracefully(process))
        print(f"chaos: rolling restart: {process.name} stopped in {stops[-1]:.1f} s", flush=True)
        start(process)
    return submitted, stops


def not_succeeded(api: httpx.Client, job_ids: list[str]) -> list[str]:
    """The jobs that ended otherwise than SUCCEEDED (every job of the workload succeeds unless a restart broke it)."""
    return [job_id for job_id in job_ids if api.get(f"/v1/jobs/{job_id}").json()["state"] != "SUCCEEDED"]
