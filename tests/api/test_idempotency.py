"""Idempotency-Key: a retried or duplicated submission never creates a second job."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from services.gateway.domain.batches import BatchRequest
from services.gateway.domain.idempotency import fingerprint
from services.gateway.domain.submission import JobRequest
from shared.models import Batch, new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.clients import VALLEY, ApiUserFactory, problem, upload


@pytest.fixture
def body(make_user: ApiUserFactory, project: Path) -> tuple[httpx2.Client, dict[str, Any]]:
    user = make_user()
    grid = upload(user, "valley.csv", (project / VALLEY).read_bytes())
    return user, {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": grid["id"]}}


def submit(user: httpx2.Client, body: dict[str, Any], key: str) -> httpx2.Response:
    return user.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})


def test_the_same_key_and_body_answer_the_same_job(body: tuple[httpx2.Client, dict[str, Any]]) -> None:
    user, request = body
    key = uuid.uuid4().hex
    first, again = submit(user, request, key), submit(user, dict(reversed(request.items())), key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(user.get("/v1/jobs").json()["items"]) == 1


def test_the_same_key_sent_concurrently_yields_exactly_one_job(body: tuple[httpx2.Client, dict[str, Any]]) -> None:
    user, request = body
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: submit(user, request, key), range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(user.get("/v1/jobs").json()["items"]) == 1


def test_the_same_key_with_another_request_is_409(body: tuple[httpx2.Client, dict[str, Any]]) -> None:
    user, request = body
    key = uuid.uuid4().hex
    assert submit(user, request, key).status_code == 201
    problem(submit(user, request | {"params": {"steps": 3}}, key), 409, "duplicate")


def test_a_failed_submission_releases_its_key(body: tuple[httpx2.Client, dict[str, Any]]) -> None:
    user, request = body
    key = uuid.uuid4().hex
    problem(submit(user, request | {"params": {"steps": -1}}, key), 422)
    assert submit(user, request, key).status_code == 201


def test_a_key_whose_request_died_before_submitting_is_taken_over_once_its_lease_lapses(
    body: tuple[httpx2.Client, dict[str, Any]], settings: Settings
) -> None:
    user, request = body
    key, job_id, owner = uuid.uuid4().hex, new_id(), user.get("/v1/me").json()["id"]
    digest = fingerprint(JobRequest.model_validate(request).model_dump(mode="json"))

    async def die_after_reserving() -> None:  # what a request that reserved the key and died leaves behind
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            reserve = stores.idempotency.reserve_idempotency_key
            assert await reserve(owner=owner, key=key, fingerprint=digest, job_id=job_id, lease_seconds=0) is None
        finally:
            await stores.close()

    asyncio.run(die_after_reserving())
    taken = submit(user, request, key)
    assert taken.status_code == 201 and taken.json()["id"] == job_id, taken.text
    again = submit(user, request, key)
    assert again.status_code == 200 and again.json()["id"] == job_id
    assert [job["id"] for job in user.get("/v1/jobs").json()["items"]] == [job_id]


def test_a_batch_whose_request_died_half_stored_is_stored_whole_by_the_retry_that_takes_its_key_over(
    body: tuple[httpx2.Client, dict[str, Any]], settings: Settings
) -> None:
    user, request = body
    key, batch_id, owner = uuid.uuid4().hex, new_id(), user.get("/v1/me").json()["id"]
    batch = {"jobs": [request, request]}
    digest = fingerprint({"batch": BatchRequest.model_validate(batch).model_dump(mode="json")})

    async def die_while_storing() -> None:  # the key reserved, the batch's record stored, then the gateway died
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            reserve = stores.idempotency.reserve_idempotency_key
            assert await reserve(owner=owner, key=key, fingerprint=digest, job_id=batch_id, lease_seconds=0) is None
            await stores.batches.insert_batch(Batch(id=batch_id, owner=owner, size=2, created=utcnow()), [])
        finally:
            await stores.close()

    asyncio.run(die_while_storing())
    taken = user.post("/v1/jobs/batch", json=batch, headers={"Idempotency-Key": key})
    assert taken.status_code == 201 and taken.json()["batch"] == batch_id, taken.text
    assert taken.json()["count"] == 2
    again = user.post("/v1/jobs/batch", json=batch, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["batch"] == batch_id
    assert len(user.get("/v1/jobs").json()["items"]) == 2


def test_keys_belong_to_their_user(body: tuple[httpx2.Client, dict[str, Any]], make_user: ApiUserFactory) -> None:
    user, request = body
    key = uuid.uuid4().hex
    mine = submit(user, request, key).json()
    other = make_user()
    grid = upload(other, "valley.csv", b"1,2,3\n4,5,6\n7,8,9\n")
    theirs = submit(other, request | {"inputs": {"elevation": grid["id"]}}, key)
    assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"bad key", b"caf\xe9", b"tab\there"])
def test_a_malformed_key_is_400(body: tuple[httpx2.Client, dict[str, Any]], key: bytes) -> None:
    user, request = body
    problem(user.post("/v1/jobs", json=request, headers={b"Idempotency-Key": key}), 400)
    assert user.get("/v1/jobs").json()["items"] == []  # nothing was submitted
