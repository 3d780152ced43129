"""Cluster info: the workers that are alive, what the queues hold, and how many jobs are active."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.helpers.clients import VALLEY, UserFactory, wait_for


def test_cluster_lists_live_workers_and_the_queues_they_consume(stack: Stack, make_user: UserFactory) -> None:
    info = make_user().get("/v1/cluster").json()
    services = {worker["service"]: worker for worker in info["workers"] if worker["alive"]}
    assert {"quern-runner", "quern-results"} <= set(services)
    runner = services["quern-runner"]
    assert runner["concurrency"] == 2 and runner["queues"] == [f"{stack.namespace}.jobs"]
    assert info["queues"][f"{stack.namespace}.jobs"]["consumers"] >= 1
    assert info["queues"][f"{stack.namespace}.results"]["consumers"] >= 1


def test_active_job_counts_are_the_callers_own(make_user: UserFactory, admin: httpx.Client, project: Path) -> None:
    alice, bob = make_user(), make_user()
    grid = alice.post("/v1/files", params={"name": "valley.csv"}, content=(project / VALLEY).read_bytes()).json()
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 6}
    job = alice.post("/v1/jobs", json=body).json()
    deadline = time.monotonic() + 30
    while alice.get(f"/v1/jobs/{job['id']}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    mine = alice.get("/v1/cluster").json()["jobs"]
    assert mine["scope"] == "mine" and mine["running"] == 1 and mine["by_app"] == {"flood": {"RUNNING": 1}}
    assert mine["by_queue"] == {"default": {"RUNNING": 1}}
    assert bob.get("/v1/cluster").json()["jobs"]["running"] == 0
    overall = admin.get("/v1/cluster").json()["jobs"]
    assert overall["scope"] == "all" and overall["running"] >= 1
    assert overall["by_queue"][f"{job['owner']}/default"]["RUNNING"] == 1
    deadline = time.monotonic() + 10
    while max(w["busy"] for w in alice.get("/v1/cluster").json()["workers"] if w["service"] == "quern-runner") < 1:
        assert time.monotonic() < deadline, "the runner's heartbeat never showed a busy slot"
        time.sleep(0.2)
    # Done with it: stopped now rather than left to its 6 s time limit.
    assert alice.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert wait_for(alice, job["id"])["state"] == "CANCELED"
