"""The first two scenarios of ``just chaos``: runners killed mid-job, and RabbitMQ stopped during submissions."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import httpx

from devstack.processes import PROJECT, alive, ensure_rabbitmq, port_open, processes_mentioning
from devstack.stack import Stack

TABLE = b"x,y\n1,2\n2,4\n3,6.5\n4,8.1\n"


def kill_runners(stack: Stack, api: httpx.Client, kills: int) -> list[str]:
    """Submit jobs and SIGKILL the runner while their apps run, ``kills`` times; returns the job ids.

    Each time a new runner starts at once, as a supervisor would start it, and the apps of the
    killed one must be gone within 30 s: they die with it, and a sandbox that bwrap was still
    setting up when its runner died is killed by the next runner of that ``WORK_DIR``.
    """
    grid = api.post(
        "/v1/files", params={"name": "valley.csv"}, content=(PROJECT / "apps/flood/example/valley.csv").read_bytes()
    )
    grid.raise_for_status()
    submitted: list[str] = []
    runner = stack.services()[1]
    for round_ in range(kills):
        body = {"app": "flood", "params": {"steps": 6000}, "inputs": {"elevation": grid.json()["id"]}}
        batch = [api.post("/v1/jobs", json=body).json()["id"] for _ in range(2)]
        submitted += batch
        deadline = time.monotonic() + 60
        while not (apps := set(processes_mentioning(*batch))):
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: round {round_ + 1}: no app started within a minute")
            time.sleep(0.05)
        pid = runner.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        runner.stop()
        runner.start()
        deadline = time.monotonic() + 30
        while any(alive(app) for app in apps):
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: round {round_ + 1}: an app outlived its killed runner")
            time.sleep(0.05)
        print(f"chaos: killed runner {pid} mid-job ({round_ + 1}/{kills})", flush=True)
    return submitted


def rabbitmq_outage(stack: Stack, api: httpx.Client, jobs: int) -> tuple[list[str], int]:
    """Submit ``jobs`` jobs while RabbitMQ is stopped and started again; returns the ids and the refusals."""
    table = api.post("/v1/files", params={"name": "t.csv"}, content=TABLE)
    table.raise_for_status()
    body = {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table.json()["id"]}}
    accepted: list[str] = []
    refused = 0
    started = threading.Event()

    def submit() -> None:
        nonlocal refused
        for i in range(jobs):
            if i == jobs // 10:
                started.set()
            answer = api.post("/v1/jobs", json=body)
            if answer.status_code == 201:
                accepted.append(answer.json()["id"])
            else:
                refused += 1
        started.set()

    submitter = threading.Thread(target=submit)
    submitter.start()
    started.wait()
    subprocess.run(["rabbitmqctl", "stop"], capture_output=True, check=False)
    while port_open("127.0.0.1", 5672):
        time.sleep(0.1)
    print("chaos: RabbitMQ stopped", flush=True)
    time.sleep(3)
    ensure_rabbitmq()
    print("chaos: RabbitMQ started again", flush=True)
    submitter.join()
    return accepted, refused
