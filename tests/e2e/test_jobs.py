"""The jobs API over the real stack: lists of finished jobs filtered; deleting, rerunning and forcing real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from devstack.stack import Stack
from tests.helpers.clients import (
    UserFactory,
    eventually,
    flood_job,
    free_slots_then_expect,
    grid,
    listed,
    long_job,
    objects,
    problem,
    processes_mentioning,
    queued_behind_busy_slots,
    tiny_job,
    upload,
    wait_for,
    wait_for_app,
    wait_for_archive,
)


def failing(user: httpx.Client, project: Path, **fields: Any) -> dict[str, Any]:
    """A linfit job that exits 2: the column it asks for is missing."""
    table = upload(user, "samples.csv", (project / "apps/linfit/example/river_samples.csv").read_bytes())
    body = {"app": "linfit", "params": {"x": "temperature_c", "y": "salinity"}, "inputs": {"table": table["id"]}}
    answer = user.post("/v1/jobs", json=body | fields)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def history(make_user: UserFactory, project: Path) -> tuple[httpx.Client, dict[str, dict[str, Any]]]:
    """A user with finished jobs a (flood, tag x), b (flood, tag y), c (linfit, FAILED, tag x), in that order."""
    user = make_user()
    file_id = grid(user, project)
    a = flood_job(user, file_id, name="alpha one", tags=["x"])
    b = flood_job(user, file_id, name="alpha two", tags=["y"])
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


def test_deleting_a_finished_job_removes_its_objects_and_record(make_user: UserFactory, s3: Any, stack: Stack) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
    wait_for_archive(user, job["id"])
    assert any(key.endswith("archive.tar.gz") for key in objects(s3, stack, job["id"]))
    answer = user.delete(f"/v1/jobs/{job['id']}")
    assert answer.status_code == 204, answer.text
    assert objects(s3, stack, job["id"]) == []
    problem(user.get(f"/v1/jobs/{job['id']}"), 404)
    assert job["id"] not in [item["id"] for item in user.get("/v1/jobs").json()["items"]]
    problem(user.delete(f"/v1/jobs/{job['id']}"), 404)


def test_deleting_a_running_job_stops_it_first(make_user: UserFactory, s3: Any, stack: Stack) -> None:
    user = make_user()
    job = long_job(user)
    wait_for_app(job["id"])
    refused = problem(user.delete(f"/v1/jobs/{job['id']}"), 409, "not-yet")
    assert "being stopped" in refused["detail"]
    assert user.get(f"/v1/jobs/{job['id']}").json()["cancel_requested"]

    def deleted() -> httpx.Response | None:
        answer = user.delete(f"/v1/jobs/{job['id']}")
        if answer.status_code != 409:
            return answer
        assert answer.headers["retry-after"]
        return None

    answer = eventually(deleted, "the running job was never deleted", timeout=60, every=0.2)
    assert answer.status_code == 204, answer.text
    assert processes_mentioning(job["id"]) == []
    assert objects(s3, stack, job["id"]) == []
    problem(user.get(f"/v1/jobs/{job['id']}"), 404)


def test_deleting_a_queued_job_cancels_and_removes_it_at_once(make_user: UserFactory, stack: Stack) -> None:
    user = make_user()
    busy, waiting = queued_behind_busy_slots(user)
    answer = user.delete(f"/v1/jobs/{waiting['id']}")
    assert answer.status_code == 204, answer.text
    problem(user.get(f"/v1/jobs/{waiting['id']}"), 404)
    marker = f'"job_id": "{waiting["id"]}", "event": "job_gone"'
    free_slots_then_expect(user, stack, busy, waiting, marker, "the deleted job's message was never seen by the runner")


def test_rerun_without_overrides_repeats_the_job(make_user: UserFactory) -> None:
    user = make_user()
    old = wait_for(user, tiny_job(user, name="first", tags=["t"], priority=7)["id"])
    answer = user.post(f"/v1/jobs/{old['id']}/rerun")
    assert answer.status_code == 201, answer.text
    new = answer.json()
    assert answer.headers["location"] == new["url"] and new["id"] != old["id"]
    assert new["rerun_of"] == old["id"] and new["state"] == "QUEUED"
    same = ("app", "app_version", "params", "inputs", "timeout_seconds", "name", "tags", "priority", "owner")
    assert {k: new[k] for k in same} == {k: old[k] for k in same}
    assert wait_for(user, new["id"])["state"] == "SUCCEEDED"
    assert user.post(f"/v1/jobs/{old['id']}/rerun", json={}).status_code == 201


def test_admin_forces_a_state_and_each_change_is_kept_in_history(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
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
    # The published schema holds for a job with history too (schemathesis is no admin).
    document = user.get("/openapi.json").json()
    answer = document["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    jsonschema.validate(shown, answer["schema"] | {"components": document["components"]})


def test_forcing_a_running_job_to_an_end_stops_its_app(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    job = long_job(user)
    wait_for_app(job["id"])
    forced = admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "FAILED", "reason": "stuck node"}).json()
    assert forced["state"] == "FAILED" and forced["finished"] and forced["cancel_requested"]
    eventually(lambda: not processes_mentioning(job["id"]), "the app kept running", every=0.2)
    assert user.get(f"/v1/jobs/{job['id']}").json()["state"] == "FAILED"


def test_forcing_the_state_a_job_is_in_is_409(make_user: UserFactory, admin: httpx.Client) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user)["id"])
    body = {"state": job["state"], "reason": "again"}
    problem(admin.post(f"/v1/jobs/{job['id']}/state", json=body), 409, "conflict")
    assert user.get(f"/v1/jobs/{job['id']}").json()["history"] == []
