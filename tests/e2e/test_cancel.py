"""Cancel: queued jobs end at once, running ones within seconds, finished ones stay as they were."""

from __future__ import annotations

import time

from devstack.stack import Stack
from tests.helpers.clients import (
    UserFactory,
    free_slots_then_expect,
    long_job,
    processes_mentioning,
    queued_behind_busy_slots,
    tiny_job,
    wait_for,
    wait_for_app,
)


def test_cancelling_a_running_job_stops_its_app_within_seconds(make_user: UserFactory) -> None:
    user = make_user()
    job = long_job(user)
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


def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(make_user: UserFactory, stack: Stack) -> None:
    user = make_user()
    busy, waiting = queued_behind_busy_slots(user)
    canceled = user.post(f"/v1/jobs/{waiting['id']}/cancel").json()
    assert canceled["state"] == "CANCELED" and canceled["finished"]
    assert "before it started" in canceled["error"]["reason"]
    marker = f'"job_id": "{waiting["id"]}", "state": "CANCELED", "worker": null, "event": "job_claim_skipped"'
    free_slots_then_expect(
        user, stack, busy, waiting, marker, "the canceled job's message was never seen by the runner"
    )


def test_cancelling_a_finished_job_changes_nothing(make_user: UserFactory) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
    assert job["state"] == "SUCCEEDED"
    answer = user.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["state"] == "SUCCEEDED"
    assert answer.json()["cancel_requested"] is None
