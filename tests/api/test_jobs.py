"""Submitting, listing and deleting jobs through the in-process gateway: what is stored, refused and shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers.clients import ApiUserFactory, flood_job, grid, listed, problem, upload


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    """A plain user of the test stack."""
    return make_user()


def submit(api: httpx2.Client, body: dict[str, Any]) -> httpx2.Response:
    return api.post("/v1/jobs", json=body)


# Requests the gateway refuses


def test_bad_params_are_422_listing_every_error_and_store_nothing(api: httpx2.Client) -> None:
    elevation = upload(api, "valley.csv", b"1,2,3\n4,5,6\n7,8,9\n")
    body = {
        "app": "flood",
        "params": {"steps": 0, "rain_mm": "lots", "colour": "red"},
        "inputs": {"elevation": elevation["id"]},
    }
    details = problem(submit(api, body), 422)
    assert {e["pointer"] for e in details["errors"]} == {"/params", "/params/rain_mm", "/params/steps"}
    assert any("colour" in e["detail"] for e in details["errors"])


def test_malformed_job_request_is_422_with_pointers(api: httpx2.Client) -> None:
    details = problem(submit(api, {"app": "flood", "inputs": {"elevation": 5}, "urgency": 1}), 422)
    assert {e["pointer"] for e in details["errors"]} == {"/inputs/elevation", "/urgency"}


def test_nan_and_infinity_are_not_json_numbers(api: httpx2.Client) -> None:
    body = b'{"app": "flood", "params": {"rain_mm": NaN}, "inputs": {}}'
    problem(api.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 400)
    body = b'{"app": "flood", "params": {"rain_mm": Infinity}, "inputs": {}}'
    problem(api.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 400)


def test_body_that_is_not_json_is_400(api: httpx2.Client) -> None:
    problem(api.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), 400)


def test_unknown_input_file_is_404(api: httpx2.Client) -> None:
    response = submit(api, {"app": "flood", "inputs": {"elevation": "01nosuchfile0000000000000"}})
    assert "01nosuchfile" in problem(response, 404)["detail"]


def test_unknown_job_and_route_are_404_problems(api: httpx2.Client) -> None:
    problem(api.get("/v1/jobs/01nosuchjob"), 404)
    problem(api.get("/v1/jobs/01nosuchjob/archive"), 404)
    problem(api.get("/v1/nothing-here"), 404, "not-found")
    problem(api.put("/v1/me"), 405, "method-not-allowed")


def test_timeout_above_the_apps_maximum_is_422(api: httpx2.Client) -> None:
    body = {"app": "linfit", "params": {"x": "a", "y": "b"}, "inputs": {"table": "x"}, "timeout_seconds": 10**6}
    assert problem(submit(api, body), 422)["errors"][0]["pointer"] == "/timeout_seconds"


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
    make_user: ApiUserFactory, project: Path, fields: dict[str, Any], pointer: str
) -> None:
    user = make_user()
    body = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": grid(user, project)}} | fields
    answer = problem(user.post("/v1/jobs", json=body), 422)
    assert pointer in [error["pointer"] for error in answer["errors"]]


# What is stored and listed


def test_name_tags_and_priority_are_stored_and_shown(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    job = flood_job(user, grid(user, project), name="valley run", tags=["flood", "b.2", "flood"], priority=8)
    shown = user.get(f"/v1/jobs/{job['id']}").json()
    assert (shown["name"], shown["tags"], shown["priority"]) == ("valley run", ["b.2", "flood"], 8)
    assert shown["rerun_of"] is None and shown["history"] == []


def test_priority_defaults_to_5_and_name_to_none(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    job = flood_job(user, grid(user, project))
    assert (job["name"], job["tags"], job["priority"]) == (None, [], 5)


def test_filtered_lists_page_oldest_first_and_newest_first(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    file_id = grid(user, project)
    for i in range(5):
        flood_job(user, file_id, name=f"kept {i}", tags=["keep"])
        flood_job(user, file_id, name=f"other {i}")
    kept = [f"kept {i}" for i in range(5)]
    assert listed(user, tag="keep", sort="created", limit=2) == kept
    assert listed(user, tag="keep", sort="-created", limit=2) == kept[::-1]
    assert listed(user, tag="keep", limit=2) == kept[::-1]
    first = user.get("/v1/jobs", params={"tag": "keep", "sort": "created", "limit": 3}).json()
    rest = user.get(first["next"]).json()
    assert [job["name"] for job in rest["items"]] == kept[3:] and rest["next"] is None


def test_name_prefix_is_taken_literally(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    file_id = grid(user, project)
    for name in ("a.c", "abc", "(x]*"):
        flood_job(user, file_id, name=name)
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
def test_bad_filters_are_400(make_user: ApiUserFactory, params: dict[str, str]) -> None:
    problem(make_user().get("/v1/jobs", params=params), 400)


def test_deleting_another_users_job_is_404_and_keeps_it(make_user: ApiUserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = flood_job(alice, grid(alice, project))
    problem(bob.delete(f"/v1/jobs/{job['id']}"), 404)
    assert alice.get(f"/v1/jobs/{job['id']}").status_code == 200
