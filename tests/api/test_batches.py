"""Batch submission: up to 10,000 jobs in one call, validated first, stored all or nothing."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.helpers.clients import ApiUserFactory, new_queue, problem

TABLE = b"x,y\n1,2\n2,4\n3,6.5\n"


def fits(user: httpx2.Client, n: int, **extra: Any) -> list[dict[str, Any]]:
    table = user.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    return [
        {"app": "linfit", "params": {"x": "x", "y": "y"}, "inputs": {"table": table["id"]}, "name": f"fit-{i}", **extra}
        for i in range(n)
    ]


def test_ten_thousand_jobs_in_one_call(make_user: ApiUserFactory) -> None:
    user = make_user()
    queue = new_queue(user, "sweep")
    user.post(f"{queue['url']}/pause")  # stored and counted, not run
    answer = user.post("/v1/jobs/batch", json={"jobs": fits(user, 10_000, queue="sweep")})
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 10_000 and len({item["id"] for item in answer.json()["items"]}) == 10_000
    assert user.get(queue["url"]).json()["counts"]["QUEUED"] == 10_000
    assert user.delete(queue["url"], params={"force": "true"}).status_code == 204
    assert user.get("/v1/jobs", params={"batch": answer.json()["batch"]}).json()["items"] == []


def test_a_batch_over_ten_thousand_is_refused(make_user: ApiUserFactory) -> None:
    user = make_user()
    jobs = [{"app": "linfit"}] * 10_001
    assert problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 422)["errors"][0]["pointer"] == "/jobs"


def test_one_bad_job_refuses_the_whole_batch_pointing_at_it(make_user: ApiUserFactory) -> None:
    user = make_user()
    jobs = fits(user, 4)
    jobs[2]["params"] = {"x": "x"}
    jobs[3]["app"] = "no-such-app"
    body = problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 422)
    pointers = [error["pointer"] for error in body["errors"]]
    assert pointers == ["/jobs/2/params", "/jobs/3/app"], body
    jobs = fits(user, 2)
    jobs[1]["inputs"] = {"table": "01aaaaaaaaaaaaaaaaaaaaaaaa"}
    assert "jobs[1]" in problem(user.post("/v1/jobs/batch", json={"jobs": jobs}), 404)["detail"]
    assert user.get("/v1/jobs").json()["items"] == []
