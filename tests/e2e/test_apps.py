"""The app registry over the real stack: apps registered, versioned and disabled through the API run on the runner."""

from __future__ import annotations

from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.helpers.clients import UserFactory, flood_copy, job_body, problem, register, wait_for


def deployed(stack: Stack) -> Path:
    """The stack's APPS_DIR, where flood.py is deployed: what an app registered through the API may name."""
    return Path(stack.env()["APPS_DIR"])


def test_an_app_registered_through_the_api_runs_on_the_runner(
    admin: httpx.Client, make_user: UserFactory, project: Path, stack: Stack
) -> None:
    definition = flood_copy(project, deployed=deployed(stack))
    created = register(admin, definition)
    assert created["source"] == "api" and created["registered_by"] == admin.get("/v1/me").json()["username"]
    assert created["disabled"] is False and created["command"] == definition["command"]
    user = make_user()
    assert definition["name"] in {app["name"] for app in user.get("/v1/apps").json()["items"]}
    submitted = user.post("/v1/jobs", json=job_body(user, project, definition["name"]))
    assert submitted.status_code == 201, submitted.text
    job = wait_for(user, submitted.json()["id"])
    assert job["state"] == "SUCCEEDED", job["error"]
    assert job["app_version"] == "1.0.0" and "summary.json" in {o["path"] for o in job["outputs"]}


def test_a_new_version_takes_new_jobs_and_old_versions_stay_readable(
    admin: httpx.Client, make_user: UserFactory, project: Path, stack: Stack
) -> None:
    first = flood_copy(project, deployed=deployed(stack))
    name = first["name"]
    register(admin, first)
    second = flood_copy(project, "2.0.0", deployed=deployed(stack), name=name, description="second")
    answer = admin.post(f"/v1/apps/{name}/versions", json=second)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"].endswith(f"/v1/apps/{name}?version=2.0.0")
    user = make_user()
    assert user.get(f"/v1/apps/{name}").json()["version"] == "2.0.0"
    assert user.get(f"/v1/apps/{name}", params={"version": "1.0.0"}).json()["description"] == first["description"]
    versions = user.get(f"/v1/apps/{name}/versions").json()["items"]
    assert [v["version"] for v in versions] == ["2.0.0", "1.0.0"]
    assert versions[1]["url"].endswith("?version=1.0.0")
    job = wait_for(user, user.post("/v1/jobs", json=job_body(user, project, name)).json()["id"])
    assert job["app_version"] == "2.0.0" and job["state"] == "SUCCEEDED", job["error"]


def test_a_disabled_app_takes_no_new_jobs_until_enabled(
    admin: httpx.Client, make_user: UserFactory, project: Path, stack: Stack
) -> None:
    definition = flood_copy(project, deployed=deployed(stack))
    name = definition["name"]
    register(admin, definition)
    user = make_user()
    body = job_body(user, project, name)
    queued = user.post("/v1/jobs", json=body).json()
    disabled = admin.post(f"/v1/apps/{name}/disable")
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert disabled.json()["disabled_by"] == admin.get("/v1/me").json()["username"]
    assert wait_for(user, queued["id"])["state"] == "SUCCEEDED"  # jobs submitted before go on
    assert problem(user.post("/v1/jobs", json=body), 409)["detail"] == f"app {name} is disabled: no new job may use it"
    assert name not in {app["name"] for app in user.get("/v1/apps").json()["items"]}
    listed = {app["name"]: app for app in admin.get("/v1/apps").json()["items"]}
    assert listed[name]["disabled"] is True
    assert user.get(f"/v1/apps/{name}").json()["disabled"] is True
    problem(user.post(f"/v1/jobs/{queued['id']}/rerun"), 409)

    assert admin.post(f"/v1/apps/{name}/enable").json()["disabled"] is False
    assert user.post("/v1/jobs", json=body).status_code == 201
