"""Per-user quotas: each refusal its own 429 or 413 problem type, changing nothing; GET /v1/me shows usage."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx2
import pytest

from tests.helpers.clients import TINY, ApiUserFactory, problem, upload
from tests.helpers.datasets import unique, zip_of


def limited(admin: httpx2.Client, make_user: ApiUserFactory, **quotas: int | None) -> tuple[httpx2.Client, str]:
    """A new user with these quotas of their own (set by the admin), and their id."""
    user = make_user()
    user_id = user.get("/v1/me").json()["id"]
    answer = admin.patch(f"/v1/users/{user_id}", json={"quotas": quotas})
    assert answer.status_code == 200, answer.text
    return user, user_id


def usage(user: httpx2.Client) -> dict[str, dict[str, Any]]:
    answer = user.get("/v1/me")
    assert answer.status_code == 200, answer.text
    return answer.json()["usage"]  # type: ignore[no-any-return]


def tiny(file_id: str, **extra: Any) -> dict[str, Any]:
    return {"app": TINY, "params": {"seconds": 0, "exit_code": 0}, "inputs": {"data": file_id}, **extra}


def test_me_shows_usage_against_the_deployments_quotas(make_user: ApiUserFactory) -> None:
    user = make_user()
    data = upload(user, "data.txt", b"tiny\n")
    assert user.post("/v1/jobs", json=tiny(data["id"])).status_code == 201
    body = {"name": "big.bin", "size": 3, "sha256": "0" * 64}
    assert user.post("/v1/uploads", json=body).status_code == 201
    assert usage(user) == {
        "queued_jobs": {"used": 1, "quota": 100_000},
        "stored_bytes": {"used": 5, "quota": 2**40},
        "pending_uploads": {"used": 1, "quota": 100},
        "event_streams": {"used": 0, "quota": 20},
        "batch_jobs": {"used": None, "quota": 10_000},
    }


def test_an_admin_sets_and_clears_a_users_own_quotas_leaving_the_rest(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user, user_id = limited(admin, make_user, queued_jobs=3, batch_jobs=0)
    assert admin.patch(f"/v1/users/{user_id}", json={"max_running": 2}).status_code == 200
    shown = admin.get(f"/v1/users/{user_id}").json()
    assert shown["max_running"] == 2 and shown["quotas"]["queued_jobs"] == 3 and shown["quotas"]["batch_jobs"] == 0
    cleared = admin.patch(f"/v1/users/{user_id}", json={"quotas": {"queued_jobs": None}}).json()
    assert cleared["quotas"]["queued_jobs"] is None and cleared["quotas"]["batch_jobs"] == 0
    assert cleared["max_running"] == 2
    problem(user.patch(f"/v1/users/{user_id}", json={"quotas": {"queued_jobs": 9}}), 403, "forbidden")
    problem(admin.patch(f"/v1/users/{user_id}", json={"quotas": {"queued_jobs": -1}}), 422, "invalid")
    problem(admin.patch(f"/v1/users/{user_id}", json={}), 422, "invalid")


def test_a_submission_past_the_queued_jobs_quota_is_429_and_stores_nothing(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user, _ = limited(admin, make_user, queued_jobs=2)
    data = upload(user, "data.txt", b"tiny\n")
    for _ in range(2):
        assert user.post("/v1/jobs", json=tiny(data["id"])).status_code == 201
    refused = user.post("/v1/jobs", json=tiny(data["id"]))
    problem(refused, 429, "quota-queued-jobs")
    assert int(refused.headers["retry-after"]) > 0
    problem(user.post("/v1/jobs/batch", json={"jobs": [tiny(data["id"])]}), 429, "quota-queued-jobs")
    assert len(user.get("/v1/jobs").json()["items"]) == 2
    assert usage(user)["queued_jobs"] == {"used": 2, "quota": 2}


@pytest.mark.parametrize(
    ("quota", "status", "kind"), [("queued_jobs", 429, "quota-queued-jobs"), ("batch_jobs", 413, "quota-batch-size")]
)
def test_a_batch_past_a_quota_is_refused_whole_and_one_within_it_is_taken(
    admin: httpx2.Client, make_user: ApiUserFactory, quota: str, status: int, kind: str
) -> None:
    user, _ = limited(admin, make_user, **{quota: 3})
    data = upload(user, "data.txt", b"tiny\n")
    problem(user.post("/v1/jobs/batch", json={"jobs": [tiny(data["id"])] * 4}), status, kind)
    assert user.get("/v1/jobs").json()["items"] == []
    assert usage(user)[quota]["quota"] == 3
    assert user.post("/v1/jobs/batch", json={"jobs": [tiny(data["id"])] * 3}).status_code == 201


def test_a_dataset_past_the_stored_bytes_quota_is_413_and_stores_nothing(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user, user_id = limited(admin, make_user)
    bundle = upload(user, "b.zip", zip_of({"data/zeros.bin": bytes(4096)}))  # compresses to far less than it holds
    room = bundle["size"] + 1000
    assert admin.patch(f"/v1/users/{user_id}", json={"quotas": {"stored_bytes": room}}).status_code == 200
    refused = user.post("/v1/datasets", json={"file_id": bundle["id"], "name": unique()})
    problem(refused, 413, "quota-stored-bytes")
    assert user.get("/v1/datasets").json()["items"] == []
    assert usage(user)["stored_bytes"] == {"used": bundle["size"], "quota": room}


def test_an_upload_past_the_pending_uploads_quota_is_429_and_records_nothing(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user, _ = limited(admin, make_user, pending_uploads=1)
    body = {"name": "big.bin", "size": 3, "sha256": "0" * 64}
    first = user.post("/v1/uploads", json=body)
    assert first.status_code == 201
    problem(user.post("/v1/uploads", json=body), 429, "quota-pending-uploads")
    assert usage(user)["pending_uploads"] == {"used": 1, "quota": 1}
    assert user.delete(first.json()["url"]).status_code == 204
    assert user.post("/v1/uploads", json=body).status_code == 201


def test_an_event_stream_past_the_quota_is_429_until_one_closes(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user, _ = limited(admin, make_user, event_streams=1)
    answers: list[int] = []
    # The in-process client answers a stream once it ended: the first stays open for its 2 s of quiet.
    first = threading.Thread(target=lambda: answers.append(user.get("/v1/events", params={"wait": 2}).status_code))
    first.start()
    try:
        time.sleep(0.5)
        problem(user.get("/v1/events", params={"wait": 1}), 429, "quota-event-streams")
    finally:
        first.join()
    assert answers == [200]
    assert user.get("/v1/events", params={"wait": 1}).status_code == 200
    assert usage(user)["event_streams"] == {"used": 0, "quota": 1}
