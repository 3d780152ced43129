"""Retention over the real stack: expired jobs lose their objects and answer 410; lost packagings are redone.

The results workers sweep every second here (``RETENTION_SWEEP_SECONDS`` in tests/helpers/stacks.py).
That deleting a job leaves no object behind is tested in test_jobs.py
(``test_deleting_a_finished_job_removes_its_objects_and_record``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pymongo

from devstack.stack import Stack
from tests.helpers.clients import UserFactory, eventually, objects, problem, tiny_job, wait_for, wait_for_archive


def wait_until_set(user: httpx.Client, job_id: str, field: str, timeout: float = 30) -> dict[str, Any]:
    """The job once ``field`` is set."""

    def job_with_it() -> dict[str, Any] | None:
        job: dict[str, Any] = user.get(f"/v1/jobs/{job_id}").json()
        return job if job[field] else None

    return eventually(job_with_it, f"{field} never set", timeout=timeout, every=0.2)


def test_a_finished_job_shows_when_its_results_expire(make_user: UserFactory) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user, retention_seconds=3600)["id"])
    finished = datetime.fromisoformat(job["finished"])
    assert job["retention_seconds"] == 3600 and job["expired"] is None
    assert datetime.fromisoformat(job["expires"]) == finished + timedelta(seconds=3600)


def test_a_job_without_retention_never_expires(make_user: UserFactory) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
    assert job["retention_seconds"] is None and job["expires"] is None


def test_an_expired_job_answers_410_and_leaves_nothing_in_s3(make_user: UserFactory, s3: Any, stack: Stack) -> None:
    user = make_user()
    job = tiny_job(user, retention_seconds=2)
    job = wait_until_set(user, job["id"], "expired")
    assert job["state"] == "SUCCEEDED" and job["archive"] is not None  # packaged first, then expired
    assert objects(s3, stack, job["id"]) == []
    problem(user.get(f"/v1/jobs/{job['id']}/archive"), 410, "gone")
    problem(user.get(f"/v1/jobs/{job['id']}/logs/stdout"), 410, "gone")
    problem(user.get(f"/v1/jobs/{job['id']}/outputs"), 410, "gone")
    problem(user.get(f"/v1/jobs/{job['id']}/outputs/{job['outputs'][0]['path']}"), 410, "gone")
    problem(user.get(f"/v1/jobs/{job['id']}/archive", params={"include": "*"}), 410, "gone")


def test_an_expired_job_can_still_be_deleted(make_user: UserFactory) -> None:
    user = make_user()
    job = wait_until_set(user, tiny_job(user, retention_seconds=1)["id"], "expired")
    assert user.delete(f"/v1/jobs/{job['id']}").status_code == 204
    problem(user.get(f"/v1/jobs/{job['id']}"), 404)


def test_a_job_whose_packaging_was_lost_is_packaged_by_the_sweep(make_user: UserFactory, stack: Stack) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
    wait_for_archive(user, job["id"])
    # As if its package_results message had been lost long ago: no archive, ended twenty minutes back.
    long_ago = datetime.now(UTC) - timedelta(minutes=20)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        client[stack.database]["jobs"].update_one(
            {"_id": job["id"]}, {"$set": {"archive": None, "finished": long_ago, "started": long_ago}}
        )
    assert user.get(f"/v1/jobs/{job['id']}").json()["archive"] is None
    packaged = wait_until_set(user, job["id"], "archive")
    assert packaged["archive"]["size"] > 0
