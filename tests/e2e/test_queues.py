"""Queues (QDO's): named per user, with a default; pause, resume, retry, recover, counts, delete."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from devstack.stack import Stack
from tests.conftest import UserFactory, problem
from tests.e2e.test_cancel import long_job
from tests.e2e.test_runner_shutdown import wait_for_app
from tests.e2e.test_walking_skeleton import wait_for

pytestmark = pytest.mark.e2e
TABLE = b"x,y\n1,2\n2,4\n3,6.5\n"


def fit(user: httpx.Client, *, queue: str = "default", y: str = "y", **extra: Any) -> dict[str, Any]:
    """A quick linfit job (y="nope" makes it fail)."""
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {"app": "linfit", "params": {"x": "x", "y": y}, "inputs": {"table": table["id"]}, "queue": queue, **extra}
    answer = user.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def new_queue(user: httpx.Client, name: str) -> dict[str, Any]:
    answer = user.post("/v1/queues", json={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def orphan(stack: Stack, job_id: str, *, worker: str) -> None:
    """Make the job look RUNNING on a worker that died mid-run (and so never heartbeats again)."""
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as mongo:
        mongo[stack.database]["jobs"].update_one(
            {"_id": job_id}, {"$set": {"state": "RUNNING", "worker": worker, "started": datetime.now(UTC)}}
        )


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_every_user_has_a_default_queue_and_creates_more(make_user: UserFactory) -> None:
    user = make_user()
    names = [q["name"] for q in user.get("/v1/queues").json()["items"]]
    assert names == ["default"]
    science = new_queue(user, "science")
    assert science["paused"] is False and science["counts"]["QUEUED"] == 0 and science["total"] == 0
    assert user.get(science["url"]).json()["name"] == "science"
    problem(user.post("/v1/queues", json={"name": "science"}), 409)
    problem(user.post("/v1/queues", json={"name": "bad name!"}), 422)
    problem(user.delete(user.get("/v1/queues").json()["items"][-1]["url"]), 409)  # the default stays


def test_a_job_goes_to_its_queue_and_an_unknown_queue_is_404(make_user: UserFactory) -> None:
    user = make_user()
    new_queue(user, "fits")
    job = fit(user, queue="fits")
    assert job["queue"] == "fits"
    assert wait_for(user, job["id"])["state"] == "SUCCEEDED"
    listed = user.get("/v1/jobs", params={"queue": "fits"}).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}, "queue": "nope"}
    assert "POST /v1/queues" in problem(user.post("/v1/jobs", json=body), 404)["detail"]
    assert [j["id"] for j in user.get("/v1/jobs").json()["items"]] == [job["id"]]


def test_a_paused_queue_starts_nothing_until_resumed(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "held")
    assert user.post(f"{queue['url']}/pause").json()["paused"] is True
    job = fit(user, queue="held")
    time.sleep(1.5)  # several dispatcher passes
    now = user.get(job["url"]).json()
    assert now["state"] == "QUEUED" and now["dispatched"] is None
    assert user.get(queue["url"]).json()["counts"]["QUEUED"] == 1
    assert user.post(f"{queue['url']}/resume").json()["paused"] is False
    assert wait_for(user, job["id"])["state"] == "SUCCEEDED"


def test_a_job_dispatched_before_its_queue_paused_is_handed_back_not_run(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    queue = new_queue(user, "late")
    busy = [long_job(user, project) for _ in range(2)]  # the test runner's two slots
    for job in busy:
        wait_for_app(job["id"])
    waiting = fit(user, queue="late")
    eventually(lambda: user.get(waiting["url"]).json()["dispatched"] is not None, "never dispatched")
    user.post(f"{queue['url']}/pause")
    for job in busy:
        user.post(f"/v1/jobs/{job['id']}/cancel")
    # The runner takes the message once a slot frees, sees the pause and gives the job back.
    eventually(lambda: user.get(waiting["url"]).json()["dispatched"] is None, "never handed back")
    assert user.get(waiting["url"]).json()["state"] == "QUEUED"
    user.post(f"{queue['url']}/resume")
    assert wait_for(user, waiting["id"])["state"] == "SUCCEEDED"


def test_higher_priority_starts_first(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "ranked")
    user.post(f"{queue['url']}/pause")
    low = [fit(user, queue="ranked", priority=1) for _ in range(3)]
    high = [fit(user, queue="ranked", priority=9) for _ in range(3)]
    user.post(f"{queue['url']}/resume")
    done = [wait_for(user, job["id"]) for job in low + high]
    first_two = sorted(done, key=lambda job: job["started"])[:2]
    assert {job["priority"] for job in first_two} == {9}, [(j["priority"], j["started"]) for j in done]


def test_retry_puts_failed_jobs_back_and_they_run_again(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "flaky")
    failed = wait_for(user, fit(user, queue="flaky", y="nope")["id"])
    succeeded = wait_for(user, fit(user, queue="flaky")["id"])
    assert failed["state"] == "FAILED" and failed["exit_code"] not in (0, None)
    eventually(lambda: user.get(failed["url"]).json()["archive"] is not None, "never packaged")
    counts = user.get(queue["url"]).json()["counts"]
    assert counts["FAILED"] == 1 and counts["SUCCEEDED"] == 1
    answer = user.post(f"{queue['url']}/retry")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"retried": [failed["id"]], "skipped": [], "more": False}
    again = wait_for(user, failed["id"])
    assert again["state"] == "FAILED" and again["started"] != failed["started"]
    assert [(h["from"], h["to"], h["reason"]) for h in again["history"]] == [
        ("FAILED", "QUEUED", "retried in queue flaky")
    ]
    assert user.get(succeeded["url"]).json()["started"] == succeeded["started"]  # left alone
    problem(user.post(f"{queue['url']}/retry", json={"states": ["RUNNING"]}), 422)


def test_recover_requeues_running_jobs_whose_worker_is_gone(make_user: UserFactory, stack: Stack) -> None:
    user = make_user()
    queue = new_queue(user, "orphans")
    user.post(f"{queue['url']}/pause")
    job = fit(user, queue="orphans")
    orphan(stack, job["id"], worker="ghost-1")
    alive = fit(user, queue="default")
    assert user.post(f"{queue['url']}/recover").json() == {"recovered": [job["id"]]}
    recovered = user.get(job["url"]).json()
    assert recovered["state"] == "QUEUED" and recovered["started"] is None
    assert recovered["history"][-1]["reason"] == "recovered: worker ghost-1 is gone"
    user.post(f"{queue['url']}/resume")
    assert wait_for(user, job["id"])["state"] == "SUCCEEDED"
    assert wait_for(user, alive["id"])["state"] == "SUCCEEDED"


def test_a_queue_with_jobs_is_deleted_only_with_force(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "scratch")
    done = wait_for(user, fit(user, queue="scratch")["id"])
    user.post(f"{queue['url']}/pause")
    waiting = fit(user, queue="scratch")
    assert "force=true" in problem(user.delete(queue["url"]), 409)["detail"]
    eventually(lambda: user.get(done["url"]).json()["archive"] is not None, "never packaged")
    assert user.delete(queue["url"], params={"force": "true"}).status_code == 204
    problem(user.get(queue["url"]), 404)
    problem(user.get(done["url"]), 404)
    problem(user.get(waiting["url"]), 404)


def test_depends_on_waits_for_success_and_fails_clearly_otherwise(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "chain")
    user.post(f"{queue['url']}/pause")
    first = fit(user, queue="chain")
    second = fit(user, queue="default", depends_on=[first["id"]])
    assert second["waiting_on"] == [first["id"]]
    time.sleep(1)
    assert user.get(second["url"]).json()["state"] == "QUEUED"  # its dependency has not run
    doomed = fit(user, queue="chain")
    orphan = fit(user, depends_on=[doomed["id"]])
    user.post(f"/v1/jobs/{doomed['id']}/cancel")
    failed = wait_for(user, orphan["id"])
    assert failed["state"] == "FAILED" and failed["started"] is None
    assert failed["error"]["reason"] == f"dependency {doomed['id']} ended CANCELED; this job did not run"
    user.post(f"{queue['url']}/resume")
    first_done, second_done = wait_for(user, first["id"]), wait_for(user, second["id"])
    assert second_done["state"] == "SUCCEEDED" and second_done["waiting_on"] == []
    assert second_done["started"] > first_done["finished"]
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}}
    bad = problem(user.post("/v1/jobs", json=body | {"depends_on": [""]}), 422)
    assert [error["pointer"] for error in bad["errors"]] == ["/depends_on/0"]
    problem(user.post("/v1/jobs", json=body | {"depends_on": ["01aaaaaaaaaaaaaaaaaaaaaaaa"]}), 404)
    assert (
        "could never start" in problem(user.post("/v1/jobs", json=body | {"depends_on": [doomed["id"]]}), 409)["detail"]
    )


def test_another_users_job_cannot_be_depended_on(make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    job = fit(alice)
    table = bob.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {
        "app": "linfit",
        "params": {"x": "x", "y": "y"},
        "inputs": {"table": table["id"]},
        "depends_on": [job["id"]],
    }
    problem(bob.post("/v1/jobs", json=body), 404)


def test_queue_names_are_the_callers_own_and_never_look_like_ids(make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    mine = new_queue(alice, "shared-name")
    theirs = new_queue(bob, "shared-name")
    assert alice.get("/v1/queues/shared-name").json()["id"] == mine["id"]
    assert bob.get("/v1/queues/shared-name").json()["id"] == theirs["id"]
    assert alice.get("/v1/queues/default").json()["owner"] != bob.get("/v1/queues/default").json()["owner"]
    problem(bob.post(f"/v1/queues/{mine['id']}/pause"), 404)
    assert alice.get(mine["url"]).json()["paused"] is False
    problem(alice.post("/v1/queues", json={"name": "01aaaaaaaaaaaaaaaaaaaaaaaa"}), 422)


def test_recover_leaves_jobs_of_live_workers_alone(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = long_job(user, project)
    wait_for_app(job["id"])
    assert user.post("/v1/queues/default/recover").json() == {"recovered": []}
    assert user.get(job["url"]).json()["state"] == "RUNNING"
    user.post(f"{job['url']}/cancel")
    assert wait_for(user, job["id"])["state"] == "CANCELED"


def test_an_admin_forcing_queued_runs_a_finished_job_again(
    make_user: UserFactory, admin: httpx.Client, project: Path
) -> None:
    user = make_user()
    failed = wait_for(user, fit(user, y="nope")["id"])
    eventually(lambda: user.get(failed["url"]).json()["archive"] is not None, "never packaged")
    forced = admin.post(f"{failed['url']}/state", json={"state": "QUEUED", "reason": "input fixed upstream"})
    assert forced.status_code == 200, forced.text
    assert (
        forced.json()["state"] == "QUEUED" and forced.json()["archive"] is None and forced.json()["exit_code"] is None
    )
    again = wait_for(user, failed["id"])
    assert again["state"] == "FAILED" and again["started"] != failed["started"]
    eventually(lambda: user.get(failed["url"]).json()["archive"] is not None, "the new run was never packaged")
    running = long_job(user, project)
    wait_for_app(running["id"])
    refused = admin.post(f"{running['url']}/state", json={"state": "QUEUED", "reason": "again"})
    assert "RUNNING" in problem(refused, 409)["detail"]
    user.post(f"{running['url']}/cancel")
    wait_for(user, running["id"])


def test_a_users_own_limit_holds_their_jobs_to_that_many_at_once(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    me = user.get("/v1/me").json()
    assert admin.patch(me["url"], json={"max_running": 0}).json()["max_running"] == 0
    held = fit(user)
    time.sleep(1)
    assert user.get(held["url"]).json()["dispatched"] is None  # a limit of 0: nothing starts
    assert admin.patch(me["url"], json={"max_running": 1}).status_code == 200
    jobs = [held] + [fit(user) for _ in range(2)]
    done = sorted((wait_for(user, job["id"]) for job in jobs), key=lambda job: job["started"])
    assert all(job["state"] == "SUCCEEDED" for job in done)
    for before, after in itertools.pairwise(done):
        assert after["started"] >= before["finished"], "two of the user's jobs ran at once"
    problem(user.patch(me["url"], json={"max_running": 5}), 403)
    problem(admin.patch(me["url"], json={"max_running": -1}), 422)
    assert admin.patch(me["url"], json={"max_running": None}).json()["max_running"] is None


def test_a_declared_exit_code_runs_the_job_again_up_to_its_attempts(make_user: UserFactory) -> None:
    user = make_user()
    flaky = wait_for(user, fit(user, y="nope", retry={"exit_codes": [2, 75], "attempts": 3})["id"])
    assert flaky["state"] == "FAILED" and flaky["exit_code"] == 2 and flaky["attempt"] == 3
    assert [(h["by"], h["reason"]) for h in flaky["history"]] == [
        ("runner", "exit code 2 asks for another run; attempt 2 of 3"),
        ("runner", "exit code 2 asks for another run; attempt 3 of 3"),
    ]
    final = wait_for(user, fit(user, y="nope", retry={"exit_codes": [75], "attempts": 3})["id"])
    assert final["state"] == "FAILED" and final["attempt"] == 1 and final["history"] == []
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}}
    for bad, pointer in (
        ({"exit_codes": [0], "attempts": 2}, "/retry/exit_codes"),
        ({"exit_codes": [2], "attempts": 1}, "/retry/attempts"),
    ):
        errors = problem(user.post("/v1/jobs", json=body | {"retry": bad}), 422)["errors"]
        assert [error["pointer"] for error in errors] == [pointer]
