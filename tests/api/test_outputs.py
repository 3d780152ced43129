"""A job's outputs through the in-process gateway: none until the job finishes (no runner here: it never does)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.helpers.clients import ApiUserFactory, problem, run_flood, wait_for


@pytest.fixture(scope="module")
def user(make_user: ApiUserFactory) -> httpx2.Client:
    return make_user()


def test_outputs_are_409_with_retry_after_until_the_job_finishes(user: httpx2.Client, project: Path) -> None:
    job = run_flood(user, project, steps=100000)
    try:
        for path in (f"/v1/jobs/{job['id']}/outputs", f"/v1/jobs/{job['id']}/outputs/depth.csv"):
            answer = user.get(path)
            problem(answer, 409, "not-yet")
            assert int(answer.headers["retry-after"]) > 0
        include = user.get(f"/v1/jobs/{job['id']}/archive", params={"include": "*.csv"})
        problem(include, 409, "not-yet")
    finally:
        user.post(f"/v1/jobs/{job['id']}/cancel")
        wait_for(user, job["id"], timeout=30)
