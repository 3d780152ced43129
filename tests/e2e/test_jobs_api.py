"""The native jobs API: names, tags and priority; filtered lists; delete; rerun; forced states."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from devstack.stack import Stack
from services.gateway.surfaces.native.schemas import JobOut
from tests.conftest import UserFactory, problem, upload
from tests.e2e.test_cancel import free_slots_then_expect, long_job, queued_behind_busy_slots
from tests.e2e.test_runner_shutdown import processes_mentioning, wait_for_app
from tests.e2e.test_walking_skeleton import wait_for, wait_for_archive

pytestmark = pytest.mark.e2e
VALLEY = "apps/flood/example/valley.csv"


def grid(user: httpx.Client, project: Path) -> str:
    return str(upload(user, "valley.csv", (project / VALLEY).read_bytes())["id"])


def submit(user: httpx.Client, file_id: str, **fields: Any) -> dict[str, Any]:
    body = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file_id}} | fields
    answer = user.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def failing(user: httpx.Client, project: Path, **fields: Any) -> dict[str, Any]:
    """A linfit job that exits 2: the column it asks for is missing."""
    table = upload(user, "samples.csv", (project / "apps/linfit/example/river_samples.csv").read_bytes())
    body = {"app": "linfit", "params": {"x": "temperature_c", "y": "salinity"}, "inputs": {"table": table["id"]}}
    answer = user.post("/v1/jobs", json=body | fields)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def listed(user: httpx.Client, **params: Any) -> list[str]:
    """The names of the jobs a list shows, following every page."""
    names, url = [], "/v1/jobs"
    while url:
        answer = user.get(url, params=params if url == "/v1/jobs" else None)
        assert answer.status_code == 200, answer.text
        names += [job["name"] for job in answer.json()["items"]]
        url = answer.json()["next"]
    return names


def test_name_tags_and_priority_are_stored_and_shown(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = submit(user, grid(user, project), name="valley run", tags=["flood", "b.2", "flood"], priority=8)
    shown = user.get(f"/v1/jobs/{job['id']}").json()
    assert (shown["name"], shown["tags"], shown["priority"]) == ("valley run", ["b.2", "flood"], 8)
    assert shown["rerun_of"] is None and shown["history"] == []


def test_priority_defaults_to_5_and_name_to_none(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = submit(user, grid(user, project))
    assert (job["name"], job["tags"], job["priority"]) == (None, [], 5)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"name": ""}, "/name"),
        ({"name": "x" * 201}, "/name"),
        ({"tags": ["Upper"]}, "/tags/0"),
        ({"tags": [f"t{i}" for i in range(21)]}, "/tags"),
        ({"priority": 10}, "/priority"),
        ({"priority": -1}, "/priority"),
    ],
)
def test_bad_name_tags_or_priority_is_422(
    make_user: UserFactory, project: Path, fields: dict[str, Any], pointer: str
) -> None:
    user = make_user()
    body = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": grid(user, project)}} | fields
    answer = problem(user.post("/v1/jobs", json=body), 422)
    assert pointer in [error["pointer"] for error in answer["errors"]]


@pytest.fixture(scope="module")
def history(make_user: UserFactory, project: Path) -> tuple[httpx.Client, dict[str, dict[str, Any]]]:
    """A user with finished jobs a (flood, tag x), b (flood, tag y), c (linfit, FAILED, tag x), in that order."""
    user = make_user()
    file_id = grid(user, project)
    a = submit(user, file_id, name="alpha one", tags=["x"])
    b = submit(user, file_id, name="alpha two", tags=["y"])
    c = failing(user, project, name="beta", tags=["x"])
    return user, {job["name"]: wait_for(user, job["id"]) for job in (a, b, c)}


def test_state_exit_code_app_tag_and_name_prefix_filter_the_list(
    history: tuple[httpx.Client, dict[str, dict[str, Any]]],
) -> None:
    user, jobs = history
    assert [job["state"] for job in jobs.values()] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert listed(user) == ["beta", "alpha two", "alpha one"]
    assert listed(user, state="FAILED") == ["beta"]
    assert listed(user, state="FAILED,SUCCEEDED") == ["beta", "alpha two", "alpha one"]
    assert listed(user, state=["QUEUED", "FAILED"]) == ["beta"]
    assert listed(user, exit_code=2) == ["beta"]
    assert listed(user, exit_code=0) == ["alpha two", "alpha one"]
    assert listed(user, app="flood") == ["alpha two", "alpha one"]
    assert listed(user, tag="x") == ["beta", "alpha one"]
    assert listed(user, name_prefix="alpha") == ["alpha two", "alpha one"]
    assert listed(user, tag="x", state="SUCCEEDED") == ["alpha one"]
    assert listed(user, tag="x", app="linfit", exit_code=2, name_prefix="be") == ["beta"]
    assert listed(user, tag="y", state="FAILED") == []


def test_created_and_finished_times_filter_the_list(history: tuple[httpx.Client, dict[str, dict[str, Any]]]) -> None:
    user, jobs = history
    one, two = jobs["alpha one"], jobs["alpha two"]
    assert listed(user, created_after=one["created"]) == ["beta", "alpha two"]
    assert listed(user, created_before=two["created"]) == ["alpha one"]
    assert listed(user, created_after=one["created"], created_before=jobs["beta"]["created"]) == ["alpha two"]
    latest = max(jobs.values(), key=lambda job: job["finished"])
    assert latest["name"] not in listed(user, finished_before=latest["finished"])
    assert listed(user, finished_after=latest["finished"]) == []
    assert listed(user, finished_after="2000-01-01", sort="created") == ["alpha one", "alpha two", "beta"]


def test_filtered_lists_page_oldest_first_and_newest_first(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    file_id = grid(user, project)
    for i in range(5):
        submit(user, file_id, name=f"kept {i}", tags=["keep"])
        submit(user, file_id, name=f"other {i}")
    kept = [f"kept {i}" for i in range(5)]
    assert listed(user, tag="keep", sort="created", limit=2) == kept
    assert listed(user, tag="keep", sort="-created", limit=2) == kept[::-1]
    assert listed(user, tag="keep", limit=2) == kept[::-1]
    first = user.get("/v1/jobs", params={"tag": "keep", "sort": "created", "limit": 3}).json()
    rest = user.get(first["next"]).json()
    assert [job["name"] for job in rest["items"]] == kept[3:] and rest["next"] is None


def test_name_prefix_is_taken_literally(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    file_id = grid(user, project)
    for name in ("a.c", "abc", "(x]*"):
        submit(user, file_id, name=name)
    assert listed(user, name_prefix="a.") == ["a.c"]
    assert listed(user, name_prefix="(x]") == ["(x]*"]
    assert listed(user, name_prefix=".*") == []


@pytest.mark.parametrize(
    "params",
    [
        {"state": "DONE"},
        {"state": "QUEUED,"},
        {"exit_code": "zero"},
        {"exit_code": "1.5"},
        {"tag": "Not A Tag"},
        {"sort": "name"},
        {"created_after": "yesterday"},
        {"finished_before": "2026-13-01"},
        {"app": ""},
    ],
)
def test_bad_filters_are_400(make_user: UserFactory, params: dict[str, str]) -> None:
    problem(make_user().get("/v1/jobs", params=params), 400)


def objects(s3: Any, stack: Stack, job_id: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"jobs/{job_id}/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_deleting_a_finished_job_removes_its_objects_and_record(
    make_user: UserFactory, project: Path, s3: Any, stack: Stack
) -> None:
    user = make_user()
    job = wait_for(user, submit(user, grid(user, project))["id"])
    wait_for_archive(user, job["id"])
    assert any(key.endswith("archive.tar.gz") for key in objects(s3, stack, job["id"]))
    answer = user.delete(f"/v1/jobs/{job['id']}")
    assert answer.status_code == 204, answer.text
    assert objects(s3, stack, job["id"]) == []
    problem(user.get(f"/v1/jobs/{job['id']}"), 404)
    assert job["id"] not in [item["id"] for item in user.get("/v1/jobs").json()["items"]]
    problem(user.delete(f"/v1/jobs/{job['id']}"), 404)


def test_deleting_a_running_job_stops_it_first(make_user: UserFactory, project: Path, s3: Any, stack: Stack) -> None:
    user = make_user()
    job = long_job(user, project)
    wait_for_app(job["id"])
    refused = problem(user.delete(f"/v1/jobs/{job['id']}"), 409, "not-yet")
    assert "being stopped" in refused["detail"]
    assert user.get(f"/v1/jobs/{job['id']}").json()["cancel_requested"]
    deadline = time.monotonic() + 60
    while (answer := user.delete(f"/v1/jobs/{job['id']}")).status_code == 409:
        assert answer.headers["retry-after"]
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    assert answer.status_code == 204, answer.text
    assert processes_mentioning(job["id"]) == []
    assert objects(s3, stack, job["id"]) == []
    problem(user.get(f"/v1/jobs/{job['id']}"), 404)


def test_deleting_a_queued_job_cancels_and_removes_it_at_once(
    make_user: UserFactory, project: Path, stack: Stack
) -> None:
    user = make_user()
    busy, waiting = queued_behind_busy_slots(user, project)
    answer = user.delete(f"/v1/jobs/{waiting['id']}")
    assert answer.status_code == 204, answer.text
    problem(user.get(f"/v1/jobs/{waiting['id']}"), 404)
    marker = f'"job_id": "{waiting["id"]}", "event": "job_gone"'
    free_slots_then_expect(user, stack, busy, waiting, marker, "the deleted job's message was never seen by the runner")


def test_deleting_another_users_job_is_404_and_keeps_it(make_user: UserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = submit(alice, grid(alice, project))
    problem(bob.delete(f"/v1/jobs/{job['id']}"), 404)
    assert alice.get(f"/v1/jobs/{job['id']}").status_code == 200


def test_rerun_without_overrides_repeats_the_job(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    old = wait_for(user, submit(user, grid(user, project), name="first", tags=["t"], priority=7)["id"])
    answer = user.post(f"/v1/jobs/{old['id']}/rerun")
    assert answer.status_code == 201, answer.text
    new = answer.json()
    assert answer.headers["location"] == new["url"] and new["id"] != old["id"]
    assert new["rerun_of"] == old["id"] and new["state"] == "QUEUED"
    same = ("app", "app_version", "params", "inputs", "timeout_seconds", "name", "tags", "priority", "owner")
    assert {k: new[k] for k in same} == {k: old[k] for k in same}
    assert wait_for(user, new["id"])["state"] == "SUCCEEDED"
    assert user.post(f"/v1/jobs/{old['id']}/rerun", json={}).status_code == 201


def test_rerun_applies_overrides_over_the_old_job(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    old = submit(user, grid(user, project), name="first", tags=["t"], params={"steps": 2, "rain_mm": 10})
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
    make_user: UserFactory, project: Path, changes: dict[str, Any], pointer: str
) -> None:
    user = make_user()
    old = submit(user, grid(user, project))
    answer = problem(user.post(f"/v1/jobs/{old['id']}/rerun", json=changes), 422)
    assert any(error["pointer"].startswith(pointer) for error in answer["errors"]), answer
    assert [job["id"] for job in user.get("/v1/jobs").json()["items"]] == [old["id"]]


def test_rerun_of_a_version_no_longer_installed_is_409(make_user: UserFactory, project: Path, stack: Stack) -> None:
    user = make_user()
    old = wait_for(user, submit(user, grid(user, project))["id"])
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        client[stack.database]["jobs"].update_one({"_id": old["id"]}, {"$set": {"app_version": "0.0.1-gone"}})
    detail = problem(user.post(f"/v1/jobs/{old['id']}/rerun"), 409, "conflict")["detail"]
    assert "0.0.1-gone" in detail and "is its current version now" in detail


def test_rerun_of_another_users_job_is_404(make_user: UserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = submit(alice, grid(alice, project))
    problem(bob.post(f"/v1/jobs/{job['id']}/rerun", json={}), 404)


def test_admin_forces_a_state_and_each_change_is_kept_in_history(
    make_user: UserFactory, admin: httpx.Client, project: Path
) -> None:
    user = make_user()
    job = wait_for(user, submit(user, grid(user, project))["id"])
    assert job["state"] == "SUCCEEDED"
    answer = admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "FAILED", "reason": "wrong grid, ticket 12"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "FAILED"
    admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "SUCCEEDED", "reason": "grid was right after all"})
    shown = user.get(f"/v1/jobs/{job['id']}").json()
    assert shown["state"] == "SUCCEEDED"
    admin_name = admin.get("/v1/me").json()["username"]
    assert [(c["from"], c["to"], c["by"], c["reason"]) for c in shown["history"]] == [
        ("SUCCEEDED", "FAILED", admin_name, "wrong grid, ticket 12"),
        ("FAILED", "SUCCEEDED", admin_name, "grid was right after all"),
    ]
    assert shown["history"][0]["at"] <= shown["history"][1]["at"]
    JobOut.model_validate(shown)  # the published schema holds for a job with history too (schemathesis is no admin)


def test_forcing_a_running_job_to_an_end_stops_its_app(
    make_user: UserFactory, admin: httpx.Client, project: Path
) -> None:
    user = make_user()
    job = long_job(user, project)
    wait_for_app(job["id"])
    forced = admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "FAILED", "reason": "stuck node"}).json()
    assert forced["state"] == "FAILED" and forced["finished"] and forced["cancel_requested"]
    deadline = time.monotonic() + 30
    while processes_mentioning(job["id"]):
        assert time.monotonic() < deadline, "the app kept running"
        time.sleep(0.2)
    assert user.get(f"/v1/jobs/{job['id']}").json()["state"] == "FAILED"


def test_forcing_the_state_a_job_is_in_is_409(make_user: UserFactory, admin: httpx.Client, project: Path) -> None:
    user = make_user()
    job = wait_for(user, submit(user, grid(user, project))["id"])
    body = {"state": job["state"], "reason": "again"}
    problem(admin.post(f"/v1/jobs/{job['id']}/state", json=body), 409, "conflict")
    assert user.get(f"/v1/jobs/{job['id']}").json()["history"] == []


@pytest.mark.parametrize(
    "body", [{"state": "DONE", "reason": "x"}, {"state": "FAILED"}, {"state": "FAILED", "reason": " "}]
)
def test_a_bad_forced_state_is_422(make_user: UserFactory, admin: httpx.Client, project: Path, body: Any) -> None:
    user = make_user()
    job = submit(user, grid(user, project))
    problem(admin.post(f"/v1/jobs/{job['id']}/state", json=body), 422)


def test_users_cannot_force_states_own_job_403_another_users_404(make_user: UserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = submit(alice, grid(alice, project))
    body = {"state": "CANCELED", "reason": "mine"}
    problem(alice.post(f"/v1/jobs/{job['id']}/state", json=body), 403)
    problem(bob.post(f"/v1/jobs/{job['id']}/state", json=body), 404)
    assert alice.get(f"/v1/jobs/{job['id']}").json()["history"] == []
