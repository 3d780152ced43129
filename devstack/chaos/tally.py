"""What ``just chaos`` counts once the jobs ended: lost, stuck, run twice, and failed for a restart."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import MongoClient

from devstack.stack import Stack

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"}


def login(stack: Stack) -> httpx.Client:
    """An HTTP client logged in as the stack's admin."""
    client = httpx.Client(base_url=stack.gateway_url, timeout=30)
    token = client.post("/v1/auth/login", json={"username": stack.admin_username, "password": stack.admin_password})
    token.raise_for_status()
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return client


@dataclass
class Tally:
    """The outcome of every job the scenarios submitted."""

    states: dict[str, str] = field(default_factory=dict)
    lost: int = 0
    stuck: int = 0
    double_runs: int = 0
    rerun: int = 0
    preempted: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


def settle(stack: Stack, api: httpx.Client, job_ids: list[str], timeout: float) -> Tally:
    """Wait for every job to end; count the missing, the unfinished and the runs started too often.

    A run is one more than a job's attempts and preemptions allow when RUNNING was recorded for it
    more often: recovery adds an attempt, a drained runner's hand-back a preemption, each a new run.
    """
    deadline = time.monotonic() + timeout
    tally = Tally()
    while time.monotonic() < deadline:
        tally.states = {}
        for job_id in job_ids:
            answer = api.get(f"/v1/jobs/{job_id}")
            tally.states[job_id] = answer.json()["state"] if answer.status_code == 200 else "MISSING"
        if all(state in TERMINAL or state == "MISSING" for state in tally.states.values()):
            break
        time.sleep(2)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(f"mongodb://127.0.0.1:{stack.ports.mongo}") as mongo:
        db: Any = mongo[stack.database]
        runs_allowed = {
            doc["_id"]: doc.get("attempt", 1) + doc.get("preemptions", 0)
            for doc in db["jobs"].find({"_id": {"$in": job_ids}}, {"attempt": 1, "preemptions": 1})
        }
        preempted = db["jobs"].count_documents({"_id": {"$in": job_ids}, "preemptions": {"$gt": 0}})
        rerun = db["jobs"].count_documents({"_id": {"$in": job_ids}, "attempt": {"$gt": 1}})
        starts: dict[str, int] = {}
        for event in db["events"].find({"type": "state", "data.state": "RUNNING"}, {"job_id": 1}):
            starts[event["job_id"]] = starts.get(event["job_id"], 0) + 1
    for state in tally.states.values():
        tally.by_state[state] = tally.by_state.get(state, 0) + 1
    tally.lost = sum(state == "MISSING" for state in tally.states.values())
    tally.stuck = sum(state not in TERMINAL and state != "MISSING" for state in tally.states.values())
    tally.double_runs = sum(starts.get(job_id, 0) > runs_allowed.get(job_id, 1) for job_id in job_ids)
    tally.rerun, tally.preempted = rerun, preempted
    return tally
