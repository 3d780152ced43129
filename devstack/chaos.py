"""``python -m devstack.chaos`` (``just chaos``): break the stack on purpose and count what was lost.

It starts a stack of its own (free ports, its own namespace, database and bucket) and then:

1. kills the runner with SIGKILL while jobs run, ``--kills`` times, starting a new one each time;
2. stops RabbitMQ while ``--jobs`` jobs are being submitted, and starts it again.

Then it waits for every accepted job to end and prints
``chaos: jobs=N lost=L stuck=S double_runs=D``: lost are submissions not answered 201 or jobs
that vanished, stuck are jobs not ended by the deadline, double runs are runs started more
often than the job's attempts. It exits non-zero unless all three are 0. RabbitMQ is the
machine's own: stopping it interrupts anything else using it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pika
from pymongo import MongoClient

from devstack.processes import PROJECT, ensure_rabbitmq, free_port, port_open
from devstack.stack import Ports, Stack
from shared.tasks import PACKAGE_RESULTS, RUN_JOB

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"}
TABLE = b"x,y\n1,2\n2,4\n3,6.5\n4,8.1\n"


def login(stack: Stack) -> httpx.Client:
    """An HTTP client logged in as the stack's admin."""
    client = httpx.Client(base_url=stack.gateway_url, timeout=30)
    token = client.post("/v1/auth/login", json={"username": stack.admin_username, "password": stack.admin_password})
    token.raise_for_status()
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return client


def running_apps(job_ids: set[str]) -> bool:
    """Whether an app process of one of these jobs is running (its sandbox path names the job)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if any(job_id.encode() in text for job_id in job_ids):
            return True
    return False


def kill_runners(stack: Stack, api: httpx.Client, kills: int) -> list[str]:
    """Submit jobs and SIGKILL the runner while their apps run, ``kills`` times; returns the job ids."""
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
        while not running_apps(set(submitted)):
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: round {round_ + 1}: no app started within a minute")
            time.sleep(0.05)
        pid = runner.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while running_apps(set(submitted)):  # they die with their runner; wait, so the next round sees new ones
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: round {round_ + 1}: an app outlived its killed runner")
            time.sleep(0.05)
        runner.stop()
        runner.start()
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


def settle(stack: Stack, api: httpx.Client, job_ids: list[str], timeout: float) -> dict[str, Any]:
    """Wait for every job to end; count the missing, the unfinished and the runs started too often."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {}
        for job_id in job_ids:
            answer = api.get(f"/v1/jobs/{job_id}")
            states[job_id] = answer.json()["state"] if answer.status_code == 200 else "MISSING"
        if all(state in TERMINAL or state == "MISSING" for state in states.values()):
            break
        time.sleep(2)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(f"mongodb://127.0.0.1:{stack.ports.mongo}") as mongo:
        db: Any = mongo[stack.database]
        attempts = {doc["_id"]: doc.get("attempt", 1) for doc in db["jobs"].find({"_id": {"$in": job_ids}})}
        starts: dict[str, int] = {}
        for event in db["events"].find({"type": "state", "data.state": "RUNNING"}, {"job_id": 1}):
            starts[event["job_id"]] = starts.get(event["job_id"], 0) + 1
    by_state: dict[str, int] = {}
    for state in states.values():
        by_state[state] = by_state.get(state, 0) + 1
    return {
        "lost": sum(state == "MISSING" for state in states.values()),
        "stuck": sum(state not in TERMINAL and state != "MISSING" for state in states.values()),
        "double_runs": sum(starts.get(job_id, 0) > attempts.get(job_id, 1) for job_id in job_ids),
        "by_state": by_state,
        "rerun": sum(attempts.get(job_id, 1) > 1 for job_id in job_ids),
    }


def delete_queues(stack: Stack) -> None:
    """Remove the RabbitMQ queues of the chaos stack's namespace."""
    connection = pika.BlockingConnection(pika.URLParameters(stack.rabbitmq_url))
    try:
        for task in (RUN_JOB, PACKAGE_RESULTS):
            for suffix in ("", ".DQ", ".XQ"):
                channel = connection.channel()
                channel.queue_delete(task.queue_name(stack.namespace) + suffix)
                channel.close()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    """Run both scenarios against a stack of its own; 0 only if nothing was lost, stuck or run twice."""
    parser = argparse.ArgumentParser(prog="python -m devstack.chaos")
    parser.add_argument("--kills", type=int, default=10, help="runner SIGKILLs mid-job (default 10)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs submitted across the RabbitMQ outage (default 200)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every job to end")
    args = parser.parse_args(argv)
    ensure_rabbitmq()
    tag = uuid.uuid4().hex[:8]
    stack = Stack(
        state_dir=Path(tempfile.mkdtemp(prefix="quern-chaos-")),
        ports=Ports(s3=free_port(), mongo=free_port(), gateway=free_port()),
        namespace=f"quern-chaos-{tag}",
        database=f"quern_chaos_{tag}",
        bucket=f"quern-chaos-{tag}",
        extra_env={"WORKER_HEARTBEAT_SECONDS": "1", "DISPATCH_INTERVAL_SECONDS": "0.2", "MAX_ATTEMPTS": "50"},
    )
    print(f"chaos: stack in {stack.state_dir} (gateway {stack.gateway_url})", flush=True)
    try:
        stack.start()
        api = login(stack)
        try:
            killed = kill_runners(stack, api, args.kills)
            accepted, refused = rabbitmq_outage(stack, api, args.jobs)
            job_ids = killed + accepted
            outcome = settle(stack, api, job_ids, args.timeout)
        finally:
            api.close()
    finally:
        for process in reversed(stack.processes()):
            process.stop()
        if not port_open("127.0.0.1", 5672):
            ensure_rabbitmq()
        delete_queues(stack)
    lost = outcome["lost"] + refused
    print(
        f"chaos: states {outcome['by_state']}; run again after a kill {outcome['rerun']}; refused {refused}", flush=True
    )
    stuck, doubles = outcome["stuck"], outcome["double_runs"]
    print(f"chaos: jobs={len(job_ids) + refused} lost={lost} stuck={stuck} double_runs={doubles}")
    return 0 if lost == stuck == doubles == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
