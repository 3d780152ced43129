"""The native jobs API: names, tags and priority; filtered lists; delete; rerun; forced states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory
from tests.e2e.test_walking_skeleton import problem, upload

pytestmark = pytest.mark.e2e
VALLEY = "apps/flood/example/valley.csv"


def grid(user: httpx.Client, project: Path) -> str:
    return str(upload(user, "valley.csv", (project / VALLEY).read_bytes())["id"])


def submit(user: httpx.Client, file_id: str, **fields: Any) -> dict[str, Any]:
    body = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file_id}} | fields
    answer = user.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


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
