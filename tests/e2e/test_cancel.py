"""Cancel: queued jobs end at once, running ones within seconds, finished ones stay as they were."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory
from tests.e2e.test_runner_shutdown import processes_mentioning, wait_for_app
from tests.e2e.test_walking_skeleton import run_flood, wait_for

pytestmark = pytest.mark.e2e
VALLEY = "apps/flood/example/valley.csv"


def long_job(user: httpx.Client, project: Path) -> dict[str, Any]:
    grid = user.post("/v1/files", params={"name": "valley.csv"}, content=(project / VALLEY).read_bytes()).json()
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 120}
    answer = user.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def queued_behind_busy_slots(user: httpx.Client, project: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two long jobs filling the test runner's two slots, and a third that therefore stays QUEUED.

    The third is dispatched (its message waits in RabbitMQ), so tests see what the runner does with it.
    """
    busy = [long_job(user, project) for _ in range(2)]
    for job in busy:
        wait_for_app(job["id"])
    waiting = long_job(user, project)
    deadline = time.monotonic() + 10
    while (current := user.get(f"/v1/jobs/{waiting['id']}").json())["dispatched"] is None:
        assert time.monotonic() < deadline, "the waiting job was never dispatched"
        time.sleep(0.05)
    assert current["state"] == "QUEUED"
    return busy, waiting


def free_slots_then_expect(
    user: httpx.Client, stack: Any, busy: list[dict[str, Any]], waiting: dict[str, Any], logged: str, what: str
) -> None:
    """Cancel the jobs holding the slots; the runner then logs ``logged`` for the waiting job and never starts it."""
    for job in busy:
        user.post(f"/v1/jobs/{job['id']}/cancel")
    for job in busy:
        assert wait_for(user, job["id"], timeout=30)["state"] == "CANCELED"
    runner_log = stack.services()[1].logfile
    deadline = time.monotonic() + 20
    while logged not in runner_log.read_text():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    assert '"event": "job_started"' not in "".join(
        line for line in runner_log.read_text().splitlines() if waiting["id"] in line
    )


def test_cancelling_a_running_job_stops_its_app_within_seconds(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = long_job(user, project)
    wait_for_app(job["id"])
    asked = time.monotonic()
    answer = user.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 200
    assert answer.json()["state"] in {"RUNNING", "CANCELED"} and answer.json()["cancel_requested"]
    finished = wait_for(user, job["id"], timeout=30)
    assert time.monotonic() - asked < 10
    assert finished["state"] == "CANCELED"
    assert finished["error"]["reason"] == "canceled on request while it ran"
    assert processes_mentioning(job["id"]) == []


def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(
    make_user: UserFactory, project: Path, stack: Any
) -> None:
    user = make_user()
    busy, waiting = queued_behind_busy_slots(user, project)
    canceled = user.post(f"/v1/jobs/{waiting['id']}/cancel").json()
    assert canceled["state"] == "CANCELED" and canceled["finished"]
    assert "before it started" in canceled["error"]["reason"]
    marker = f'"job_id": "{waiting["id"]}", "state": "CANCELED", "worker": null, "event": "job_claim_skipped"'
    free_slots_then_expect(
        user, stack, busy, waiting, marker, "the canceled job's message was never seen by the runner"
    )


def test_cancelling_a_finished_job_changes_nothing(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = wait_for(user, run_flood(user, project, steps=2)["id"])
    assert job["state"] == "SUCCEEDED"
    answer = user.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["state"] == "SUCCEEDED"
    assert answer.json()["cancel_requested"] is None
