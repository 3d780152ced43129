"""Retention through the in-process gateway: each job keeps its own, and a rerun keeps the old job's."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.clients import ApiUserFactory, flood_job, grid


def test_each_job_of_a_batch_keeps_its_own_retention(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    file_id = grid(user, project)
    one = {"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file_id}}
    answer = user.post("/v1/jobs/batch", json={"jobs": [one | {"retention_seconds": 600}, one]})
    assert answer.status_code == 201, answer.text
    jobs = [user.get(f"/v1/jobs/{item['id']}").json() for item in answer.json()["items"]]
    assert [job["retention_seconds"] for job in jobs] == [600, None]


def test_a_rerun_keeps_the_old_jobs_retention_unless_overridden(make_user: ApiUserFactory, project: Path) -> None:
    user = make_user()
    old = flood_job(user, grid(user, project), retention_seconds=600)
    kept = user.post(f"/v1/jobs/{old['id']}/rerun").json()
    changed = user.post(f"/v1/jobs/{old['id']}/rerun", json={"retention_seconds": 60}).json()
    assert (kept["retention_seconds"], changed["retention_seconds"]) == (600, 60)
