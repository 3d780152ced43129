"""Queues over the real stack: pause, resume, retry, recover, priorities, dependencies and limits as jobs run."""

from __future__ import annotations

import itertools

import httpx

from devstack.stack import Stack
from tests.helpers.clients import (
    UserFactory,
    dispatcher_passed,
    eventually,
    long_job,
    new_queue,
    orphan,
    problem,
    tiny_job,
    wait_for,
    wait_for_app,
)

TABLE = b"x,y\n1,2\n2,4\n3,6.5\n"


def test_a_job_goes_to_its_queue_and_an_unknown_queue_is_404(make_user: UserFactory) -> None:
    user = make_user()
    new_queue(user, "fits")
    job = tiny_job(user, queue="fits")
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
    job = tiny_job(user, queue="held")
    dispatcher_passed(user)
    now = user.get(job["url"]).json()
    assert now["state"] == "QUEUED" and now["dispatched"] is None
    assert user.get(queue["url"]).json()["counts"]["QUEUED"] == 1
    assert user.post(f"{queue['url']}/resume").json()["paused"] is False
    assert wait_for(user, job["id"])["state"] == "SUCCEEDED"


def test_a_job_dispatched_before_its_queue_paused_is_handed_back_not_run(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "late")
    busy = [long_job(user) for _ in range(2)]  # the test runner's two slots
    for job in busy:
        wait_for_app(job["id"])
    waiting = tiny_job(user, queue="late")
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
    low = [tiny_job(user, queue="ranked", priority=1) for _ in range(3)]
    high = [tiny_job(user, queue="ranked", priority=9) for _ in range(3)]
    user.post(f"{queue['url']}/resume")
    done = [wait_for(user, job["id"]) for job in low + high]
    first_two = sorted(done, key=lambda job: job["started"])[:2]
    assert {job["priority"] for job in first_two} == {9}, [(j["priority"], j["started"]) for j in done]


def test_retry_puts_failed_jobs_back_and_they_run_again(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "flaky")
    failed = wait_for(user, tiny_job(user, queue="flaky", exit_code=2)["id"])
    succeeded = wait_for(user, tiny_job(user, queue="flaky")["id"])
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
    job = tiny_job(user, queue="orphans")
    orphan(stack, job["id"], worker="ghost-1")
    alive = tiny_job(user, queue="default")
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
    done = wait_for(user, tiny_job(user, queue="scratch")["id"])
    user.post(f"{queue['url']}/pause")
    waiting = tiny_job(user, queue="scratch")
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
    first = tiny_job(user, queue="chain")
    second = tiny_job(user, queue="default", depends_on=[first["id"]])
    assert second["waiting_on"] == [first["id"]]
    dispatcher_passed(user)
    assert user.get(second["url"]).json()["state"] == "QUEUED"  # its dependency has not run
    doomed = tiny_job(user, queue="chain")
    dependent = tiny_job(user, depends_on=[doomed["id"]])
    user.post(f"/v1/jobs/{doomed['id']}/cancel")
    failed = wait_for(user, dependent["id"])
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


def test_recover_leaves_jobs_of_live_workers_alone(make_user: UserFactory) -> None:
    user = make_user()
    job = long_job(user)
    wait_for_app(job["id"])
    assert user.post("/v1/queues/default/recover").json() == {"recovered": []}
    assert user.get(job["url"]).json()["state"] == "RUNNING"
    user.post(f"{job['url']}/cancel")
    assert wait_for(user, job["id"])["state"] == "CANCELED"


def test_an_admin_forcing_queued_runs_a_finished_job_again(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    failed = wait_for(user, tiny_job(user, exit_code=2)["id"])
    eventually(lambda: user.get(failed["url"]).json()["archive"] is not None, "never packaged")
    forced = admin.post(f"{failed['url']}/state", json={"state": "QUEUED", "reason": "input fixed upstream"})
    assert forced.status_code == 200, forced.text
    assert (
        forced.json()["state"] == "QUEUED" and forced.json()["archive"] is None and forced.json()["exit_code"] is None
    )
    again = wait_for(user, failed["id"])
    assert again["state"] == "FAILED" and again["started"] != failed["started"]
    eventually(lambda: user.get(failed["url"]).json()["archive"] is not None, "the new run was never packaged")
    running = long_job(user)
    wait_for_app(running["id"])
    refused = admin.post(f"{running['url']}/state", json={"state": "QUEUED", "reason": "again"})
    assert "RUNNING" in problem(refused, 409)["detail"]
    user.post(f"{running['url']}/cancel")
    wait_for(user, running["id"])


def test_a_users_own_limit_holds_their_jobs_to_that_many_at_once(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    me = user.get("/v1/me").json()
    assert admin.patch(me["url"], json={"max_running": 0}).json()["max_running"] == 0
    held = tiny_job(user)
    dispatcher_passed(make_user())
    assert user.get(held["url"]).json()["dispatched"] is None  # a limit of 0: nothing starts
    assert admin.patch(me["url"], json={"max_running": 1}).status_code == 200
    jobs = [held] + [tiny_job(user) for _ in range(2)]
    done = sorted((wait_for(user, job["id"]) for job in jobs), key=lambda job: job["started"])
    assert all(job["state"] == "SUCCEEDED" for job in done)
    for before, after in itertools.pairwise(done):
        assert after["started"] >= before["finished"], "two of the user's jobs ran at once"
    problem(user.patch(me["url"], json={"max_running": 5}), 403)
    problem(admin.patch(me["url"], json={"max_running": -1}), 422)
    assert admin.patch(me["url"], json={"max_running": None}).json()["max_running"] is None


def test_a_declared_exit_code_runs_the_job_again_up_to_its_attempts(make_user: UserFactory) -> None:
    user = make_user()
    flaky = wait_for(user, tiny_job(user, exit_code=2, retry={"exit_codes": [2, 75], "attempts": 3})["id"])
    assert flaky["state"] == "FAILED" and flaky["exit_code"] == 2 and flaky["attempt"] == 3
    assert [(h["by"], h["reason"]) for h in flaky["history"]] == [
        ("runner", "exit code 2 asks for another run; attempt 2 of 3"),
        ("runner", "exit code 2 asks for another run; attempt 3 of 3"),
    ]
    final = wait_for(user, tiny_job(user, exit_code=2, retry={"exit_codes": [75], "attempts": 3})["id"])
    assert final["state"] == "FAILED" and final["attempt"] == 1 and final["history"] == []
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}}
    for bad, pointer in (
        ({"exit_codes": [0], "attempts": 2}, "/retry/exit_codes"),
        ({"exit_codes": [2], "attempts": 1}, "/retry/attempts"),
    ):
        errors = problem(user.post("/v1/jobs", json=body | {"retry": bad}), 422)["errors"]
        assert [error["pointer"] for error in errors] == [pointer]
