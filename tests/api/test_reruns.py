"""Reruns through the in-process gateway: a new job from an old one, with overrides checked like a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymongo
import pytest

from devstack.stack import Stack
from tests.helpers.clients import ApiUserFactory, flood_job, grid, problem


def test_rerun_applies_overrides_over_the_old_job(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    old = flood_job(user, grid(user, project), name="first", tags=["t"], params={"steps": 2, "rain_mm": 10})
    other = grid(user, project)
    changes = {
        "params": {"steps": 3},
        "inputs": {"elevation": other},
        "timeout_seconds": 30,
        "name": "second",
        "tags": ["u", "v"],
        "priority": 0,
    }
    answer = user.post(f"/v1/jobs/{old['id']}/rerun", json=changes)
    assert answer.status_code == 201, answer.text
    new = answer.json()
    assert new["params"] == old["params"] | {"steps": 3} and new["params"]["rain_mm"] == 10
    assert new["inputs"] == {"elevation": other}
    assert (new["timeout_seconds"], new["name"], new["tags"], new["priority"]) == (30, "second", ["u", "v"], 0)
    assert new["rerun_of"] == old["id"]


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"params": {"steps": 0}}, "/params/steps"),
        ({"params": {"nonsense": 1}}, "/params"),
        ({"inputs": {"elevation": 5}}, "/inputs/elevation"),
        ({"priority": 12}, "/priority"),
        ({"tags": ["NO"]}, "/tags/0"),
        ({"timeout_seconds": 0}, "/timeout_seconds"),
        ({"app": "linfit"}, "/app"),
    ],
)
def test_bad_rerun_overrides_are_422(
    make_user: ApiUserFactory, project: Path, changes: dict[str, Any], pointer: str
) -> None:
    user = make_user()
    old = flood_job(user, grid(user, project))
    answer = problem(user.post(f"/v1/jobs/{old['id']}/rerun", json=changes), 422)
    assert any(error["pointer"].startswith(pointer) for error in answer["errors"]), answer
    assert [job["id"] for job in user.get("/v1/jobs").json()["items"]] == [old["id"]]


def test_rerun_of_a_version_no_longer_installed_is_409(make_user: ApiUserFactory, project: Path, stack: Stack) -> None:
    user = make_user()
    old = flood_job(user, grid(user, project))  # no runner here to race the change below
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        client[stack.database]["jobs"].update_one({"_id": old["id"]}, {"$set": {"app_version": "0.0.1-gone"}})
    detail = problem(user.post(f"/v1/jobs/{old['id']}/rerun"), 409, "conflict")["detail"]
    assert "0.0.1-gone" in detail and "is its current version now" in detail


def test_rerun_of_another_users_job_is_404(make_user: ApiUserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = flood_job(alice, grid(alice, project))
    problem(bob.post(f"/v1/jobs/{job['id']}/rerun", json={}), 404)


def test_rerun_of_another_users_job_is_404_before_its_body_is_read(make_user: ApiUserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = flood_job(alice, grid(alice, project))
    problem(bob.post(f"/v1/jobs/{job['id']}/rerun", json={"params": {"steps": 0}, "nonsense": 1}), 404)
