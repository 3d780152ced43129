"""Scenario: a runner killed with SIGKILL and started again at once under the same ``RUNNER_ID``.

The new process heartbeats under the same name before anyone could miss it, so heartbeats cannot
tell that the jobs of the killed one are lost. Each start is an incarnation of its own that
renews only its own leases: the killed one's leases lapse and the reaper runs those jobs again.
"""

from __future__ import annotations

import os
import signal
import time

import httpx

from devstack.chaos.runners import start
from devstack.processes import Process, wait_until


def kill_and_restart_same_id(api: httpx.Client, app: str, process: Process, jobs: int = 4) -> list[str]:
    """Run ``jobs`` 8-second jobs on ``process`` (the only runner up, idle), kill it mid-run, restart it at once."""
    submitted = [api.post("/v1/jobs", json={"app": app, "params": {"seconds": 8}}).json()["id"] for _ in range(jobs)]

    def all_running() -> bool:
        return all(api.get(f"/v1/jobs/{job_id}").json()["state"] == "RUNNING" for job_id in submitted)

    wait_until(all_running, "the same-id restart's jobs to run, all at once", timeout=60)
    time.sleep(1)
    pid = process.pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    process.stop()  # forget the dead process
    start(process)  # the same RUNNER_ID, at once
    print(f"chaos: killed runner {pid} and started it again under {process.env['RUNNER_ID']}", flush=True)
    return submitted


def not_recovered_by_lease(api: httpx.Client, job_ids: list[str]) -> list[str]:
    """The jobs that did not succeed on a second attempt after the reaper found their lease lapsed."""
    missed = []
    for job_id in job_ids:
        job = api.get(f"/v1/jobs/{job_id}").json()
        reaped = any(change["by"] == "reaper" and "lease" in change["reason"] for change in job["history"])
        if not (job["state"] == "SUCCEEDED" and job["attempt"] >= 2 and reaped):
            missed.append(job_id)
    return missed
