"""The app registry over the real stack: admins register, version, disable and enable apps; runners run them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory, problem, upload
from tests.e2e.test_walking_skeleton import wait_for

pytestmark = pytest.mark.e2e


def flood_copy(project: Path, version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    """The flood app's definition under a fresh name, its command naming flood.py by absolute path."""
    definition: dict[str, Any] = json.loads((project / "apps/flood/app.json").read_text())
    definition["command"][1] = str(project / "apps/flood/flood.py")
    return definition | {"name": f"flood-{uuid.uuid4().hex[:8]}", "version": version} | overrides


def job_body(user: httpx.Client, project: Path, app: str) -> dict[str, Any]:
    grid = upload(user, "valley.csv", (project / "apps/flood/example/valley.csv").read_bytes())
    return {"app": app, "params": {"steps": 2}, "inputs": {"elevation": grid["id"]}}


def register(admin: httpx.Client, definition: dict[str, Any]) -> dict[str, Any]:
    answer = admin.post("/v1/apps", json=definition)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_an_app_registered_through_the_api_runs_on_the_runner(
    admin: httpx.Client, make_user: UserFactory, project: Path
) -> None:
    definition = flood_copy(project)
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


def test_directory_apps_are_in_the_registry(admin: httpx.Client) -> None:
    flood = admin.get("/v1/apps/flood").json()
    assert flood["source"] == "directory" and flood["registered_by"] == "app-directory"
    assert [v["version"] for v in admin.get("/v1/apps/flood/versions").json()["items"]] == ["1.0.0"]


def test_a_new_version_takes_new_jobs_and_old_versions_stay_readable(
    admin: httpx.Client, make_user: UserFactory, project: Path
) -> None:
    first = flood_copy(project)
    name = first["name"]
    register(admin, first)
    second = flood_copy(project, "2.0.0", name=name, description="second")
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


def test_a_registered_version_is_never_replaced(admin: httpx.Client, project: Path) -> None:
    definition = flood_copy(project)
    register(admin, definition)
    changed = definition | {"description": "changed"}
    assert "new version" in problem(admin.post("/v1/apps", json=changed), 409)["detail"]
    name = definition["name"]
    assert "versions never change" in problem(admin.post(f"/v1/apps/{name}/versions", json=changed), 409)["detail"]
    assert admin.get(f"/v1/apps/{name}").json()["description"] == definition["description"]
    problem(admin.post("/v1/apps", json=flood_copy(project, name="flood")), 409)


def test_a_version_of_an_unknown_app_is_404_and_of_another_app_422(admin: httpx.Client, project: Path) -> None:
    stray = flood_copy(project)
    problem(admin.post(f"/v1/apps/{stray['name']}/versions", json=stray), 404)
    errors = problem(admin.post("/v1/apps/flood/versions", json=stray), 422)["errors"]
    assert [error["pointer"] for error in errors] == ["/name"]


def test_a_bad_definition_is_422_naming_each_fault(admin: httpx.Client, project: Path) -> None:
    definition = flood_copy(project)
    definition |= {"name": "Bad Name", "timeout": {"default": 1, "max": 10**9}, "shell": True}
    definition["parameters"]["properties"]["steps"]["type"] = "integerish"
    errors = problem(admin.post("/v1/apps", json=definition), 422)["errors"]
    assert {error["pointer"] for error in errors} >= {"/name", "/timeout/max", "/shell", "/parameters"}
    placeholder = flood_copy(project, command=["{python}", "{params.nope}"])
    detail = problem(admin.post("/v1/apps", json=placeholder), 422)["errors"][0]["detail"]
    assert "names nothing" in detail
    problem(admin.post("/v1/apps", content=b"{not json"), 400)


def test_users_cannot_change_the_registry(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    definition = flood_copy(project, name="flood", version="9.9.9")
    problem(user.post("/v1/apps", json=flood_copy(project)), 403)
    problem(user.post("/v1/apps/flood/versions", json=definition), 403)
    problem(user.post("/v1/apps/flood/disable"), 403)
    problem(user.post("/v1/apps/flood/enable"), 403)
    assert user.get("/v1/apps/flood").json()["version"] == "1.0.0"


def test_a_disabled_app_takes_no_new_jobs_until_enabled(
    admin: httpx.Client, make_user: UserFactory, project: Path
) -> None:
    definition = flood_copy(project)
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


def test_disabling_one_version_sends_new_jobs_to_the_previous_one(admin: httpx.Client, project: Path) -> None:
    definition = flood_copy(project)
    name = definition["name"]
    register(admin, definition)
    admin.post(f"/v1/apps/{name}/versions", json=definition | {"version": "1.1.0"}).raise_for_status()
    answer = admin.post(f"/v1/apps/{name}/disable", json={"version": "1.1.0"})
    assert answer.json()["version"] == "1.1.0" and answer.json()["disabled"] is True
    assert admin.get(f"/v1/apps/{name}").json()["version"] == "1.0.0"
    job = admin.post("/v1/jobs", json=job_body(admin, project, name))
    assert job.status_code == 201 and job.json()["app_version"] == "1.0.0"
    problem(admin.post(f"/v1/apps/{name}/disable", json={"version": "7"}), 404)
    problem(admin.post("/v1/apps/no-such-app/enable"), 404)
    problem(admin.get(f"/v1/apps/{name}", params={"version": "7"}), 404)
    problem(admin.get("/v1/apps/no-such-app/versions"), 404)
