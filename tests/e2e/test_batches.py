"""Batch submission: up to 10,000 jobs in one call, validated first, stored all or nothing."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory, problem
from tests.e2e.test_queues import TABLE, new_queue
from tests.e2e.test_walking_skeleton import wait_for, wait_for_archive

pytestmark = pytest.mark.e2e


def fits(user: httpx.Client, n: int, **extra: Any) -> list[dict[str, Any]]:
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    return [
        {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}, "name": f"fit-{i}", **extra}
        for i in range(n)
    ]


def test_a_batch_runs_every_job_and_lists_as_one(make_user: UserFactory) -> None:
    user = make_user()
    answer = user.post("/v1/jobs/batch", json={"jobs": fits(user, 3, tags=["sweep"])})
    assert answer.status_code == 201, answer.text
    batch = answer.json()
    assert batch["count"] == 3 and [item["name"] for item in batch["items"]] == ["fit-0", "fit-1", "fit-2"]
    for item in batch["items"]:
        job = wait_for(user, item["id"])
        assert job["state"] == "SUCCEEDED" and job["batch"] == batch["batch"]
    listed = user.get(batch["links"]["jobs"]).json()["items"]
    assert sorted(job["id"] for job in listed) == sorted(item["id"] for item in batch["items"])


def test_ten_thousand_jobs_in_one_call(make_user: UserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "sweep")
    user.post(f"{queue['url']}/pause")  # stored and counted, not run
    answer = user.post("/v1/jobs/batch", json={"jobs": fits(user, 10_000, queue="sweep")}, timeout=120)
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 10_000 and len({item["id"] for item in answer.json()["items"]}) == 10_000
    assert user.get(queue["url"]).json()["counts"]["QUEUED"] == 10_000
    assert user.delete(queue["url"], params={"force": "true"}, timeout=120).status_code == 204
    assert user.get("/v1/jobs", params={"batch": answer.json()["batch"]}).json()["items"] == []


def test_a_batch_over_ten_thousand_is_refused(make_user: UserFactory) -> None:
    user = make_user()
    jobs = [{"app": "linfit"}] * 10_001
    assert problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 422)["errors"][0]["pointer"] == "/jobs"


def test_one_bad_job_refuses_the_whole_batch_pointing_at_it(make_user: UserFactory) -> None:
    user = make_user()
    jobs = fits(user, 4)
    jobs[2]["params"] = {"x": "x"}
    jobs[3]["app"] = "no-such-app"
    body = problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 422)
    pointers = [error["pointer"] for error in body["errors"]]
    assert pointers == ["/jobs/2/params", "/jobs/3/app"], body
    jobs = fits(user, 2)
    jobs[1]["inputs"] = {"table": "01aaaaaaaaaaaaaaaaaaaaaaaa"}
    assert "jobs[1]" in problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 404)["detail"]
    assert user.get("/v1/jobs").json()["items"] == []


def test_the_same_idempotency_key_gives_one_batch(make_user: UserFactory) -> None:
    user = make_user()
    body = {"jobs": fits(user, 5)}
    headers = {"Idempotency-Key": "sweep-2026-11-23"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: user.post("/v1/jobs/batch", json=body, headers=headers), range(2)))
    assert sorted(answer.status_code for answer in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json()["batch"] == answers[1].json()["batch"]
    assert len(user.get("/v1/jobs", params={"limit": 50}).json()["items"]) == 5
    problem(user.post("/v1/jobs/batch", json={"jobs": body["jobs"][:4]}, headers=headers), 409)
    for item in answers[0].json()["items"]:
        wait_for_archive(user, item["id"])
        assert user.delete(item["url"]).status_code == 204
    replayed = user.post("/v1/jobs/batch", json=body, headers=headers)  # its jobs are gone: the batch is empty
    assert replayed.status_code == 200 and replayed.json()["batch"] == answers[0].json()["batch"]
    assert replayed.json()["count"] == 0
