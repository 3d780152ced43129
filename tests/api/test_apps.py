"""The app registry through the in-process gateway: admins register, version, disable and enable apps."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.helpers.clients import ApiUserFactory, flood_copy, job_body, problem, register


def test_apps_are_listed_and_described_with_their_schema(make_user: ApiUserFactory) -> None:
    api = make_user()
    names = [app["name"] for app in api.get("/v1/apps").json()["items"]]
    assert names == sorted(names) and {"flood", "linfit"} <= set(names)
    flood = api.get("/v1/apps/flood").json()
    assert flood["parameters"]["properties"]["steps"]["maximum"] == 100000
    assert flood["inputs"]["elevation"]["required"] is True


def test_unknown_app_is_404(make_user: ApiUserFactory) -> None:
    api = make_user()
    problem(api.post("/v1/jobs", json={"app": "no-such-app"}), 404)
    problem(api.get("/v1/apps/no-such-app"), 404)


def test_directory_apps_are_in_the_registry(admin: httpx2.Client) -> None:
    flood = admin.get("/v1/apps/flood").json()
    assert flood["source"] == "directory" and flood["registered_by"] == "app-directory"
    assert [v["version"] for v in admin.get("/v1/apps/flood/versions").json()["items"]] == ["1.0.0"]


def test_a_registered_version_is_never_replaced(admin: httpx2.Client, project: Path) -> None:
    definition = flood_copy(project)
    register(admin, definition)
    changed = definition | {"description": "changed"}
    assert "new version" in problem(admin.post("/v1/apps", json=changed), 409)["detail"]
    name = definition["name"]
    assert "versions never change" in problem(admin.post(f"/v1/apps/{name}/versions", json=changed), 409)["detail"]
    assert admin.get(f"/v1/apps/{name}").json()["description"] == definition["description"]
    problem(admin.post("/v1/apps", json=flood_copy(project, name="flood")), 409)


def test_a_version_of_an_unknown_app_is_404_and_of_another_app_422(admin: httpx2.Client, project: Path) -> None:
    stray = flood_copy(project)
    problem(admin.post(f"/v1/apps/{stray['name']}/versions", json=stray), 404)
    errors = problem(admin.post("/v1/apps/flood/versions", json=stray), 422)["errors"]
    assert [error["pointer"] for error in errors] == ["/name"]


def test_a_bad_definition_is_422_naming_each_fault(admin: httpx2.Client, project: Path) -> None:
    definition = flood_copy(project)
    definition |= {"name": "Bad Name", "timeout": {"default": 1, "max": 10**9}, "shell": True}
    definition["parameters"]["properties"]["steps"]["type"] = "integerish"
    errors = problem(admin.post("/v1/apps", json=definition), 422)["errors"]
    assert {error["pointer"] for error in errors} >= {"/name", "/timeout/max", "/shell", "/parameters"}
    placeholder = flood_copy(project, command=["{python}", "{params.nope}"])
    detail = problem(admin.post("/v1/apps", json=placeholder), 422)["errors"][0]["detail"]
    assert "names nothing" in detail
    problem(admin.post("/v1/apps", content=b"{not json"), 400)


def test_users_cannot_change_the_registry(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    definition = flood_copy(project, name="flood", version="9.9.9")
    problem(user.post("/v1/apps", json=flood_copy(project)), 403)
    problem(user.post("/v1/apps/flood/versions", json=definition), 403)
    problem(user.post("/v1/apps/flood/disable"), 403)
    problem(user.post("/v1/apps/flood/enable"), 403)
    assert user.get("/v1/apps/flood").json()["version"] == "1.0.0"


def test_disabling_one_version_sends_new_jobs_to_the_previous_one(admin: httpx2.Client, project: Path) -> None:
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
