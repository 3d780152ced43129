"""Forced states through the in-process gateway: only admins force, and only to a state with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers.clients import ApiUserFactory, flood_job, grid, problem


@pytest.mark.parametrize(
    "body", [{"state": "DONE", "reason": "x"}, {"state": "FAILED"}, {"state": "FAILED", "reason": " "}]
)
def test_a_bad_forced_state_is_422(make_user: ApiUserFactory, admin: httpx2.Client, project: Path, body: Any) -> None:
    user = make_user()
    job = flood_job(user, grid(user, project))
    problem(admin.post(f"/v1/jobs/{job['id']}/state", json=body), 422)


def test_users_cannot_force_states_own_job_403_another_users_404(make_user: ApiUserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = flood_job(alice, grid(alice, project))
    body = {"state": "CANCELED", "reason": "mine"}
    problem(alice.post(f"/v1/jobs/{job['id']}/state", json=body), 403)
    problem(bob.post(f"/v1/jobs/{job['id']}/state", json=body), 404)
    assert alice.get(f"/v1/jobs/{job['id']}").json()["history"] == []


def test_users_forcing_states_are_refused_before_their_body_is_read(make_user: ApiUserFactory, project: Path) -> None:
    alice, bob = make_user(), make_user()
    job = flood_job(alice, grid(alice, project))
    body = {"state": "DONE"}  # 422 for an admin
    problem(alice.post(f"/v1/jobs/{job['id']}/state", json=body), 403)
    problem(bob.post(f"/v1/jobs/{job['id']}/state", json=body), 404)


def test_a_job_waits_only_on_dependencies_that_have_not_succeeded(
    make_user: ApiUserFactory, admin: httpx2.Client, project: Path
) -> None:
    user = make_user()
    table = grid(user, project)
    done, pending = flood_job(user, table), flood_job(user, table)
    forced = admin.post(f"/v1/jobs/{done['id']}/state", json={"state": "SUCCEEDED", "reason": "ran elsewhere"})
    assert forced.status_code == 200, forced.text
    after = flood_job(user, table, depends_on=[done["id"], pending["id"]])
    assert after["depends_on"] == [done["id"], pending["id"]] and after["waiting_on"] == [pending["id"]]
