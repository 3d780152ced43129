"""Batches over the real stack: every job of a batch runs, and one Idempotency-Key gives one batch."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx

from tests.helpers.clients import TINY, UserFactory, problem, upload, wait_for, wait_for_archive


def tinies(user: httpx.Client, n: int, **extra: Any) -> list[dict[str, Any]]:
    data = upload(user, "data.txt", b"tiny\n")
    return [{"app": TINY, "inputs": {"data": data["id"]}, "name": f"fit-{i}", **extra} for i in range(n)]


def test_a_batch_runs_every_job_and_lists_as_one(make_user: UserFactory) -> None:
    user = make_user()
    answer = user.post("/v1/jobs/batch", json={"jobs": tinies(user, 3, tags=["sweep"])})
    assert answer.status_code == 201, answer.text
    batch = answer.json()
    assert batch["count"] == 3 and [item["name"] for item in batch["items"]] == ["fit-0", "fit-1", "fit-2"]
    for item in batch["items"]:
        job = wait_for(user, item["id"])
        assert job["state"] == "SUCCEEDED" and job["batch"] == batch["batch"]
    listed = user.get(batch["links"]["jobs"]).json()["items"]
    assert sorted(job["id"] for job in listed) == sorted(item["id"] for item in batch["items"])


def test_the_same_idempotency_key_gives_one_batch(make_user: UserFactory) -> None:
    user = make_user()
    body = {"jobs": tinies(user, 5)}
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
