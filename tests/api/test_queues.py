"""Queues through the in-process gateway: named per user with a default, addressed by name, and isolated."""

from __future__ import annotations

from tests.helpers.clients import ApiUserFactory, new_queue, problem, tiny_job

TABLE = b"x,y\n1,2\n2,4\n3,6.5\n"


def test_every_user_has_a_default_queue_and_creates_more(make_user: ApiUserFactory) -> None:
    user = make_user()
    names = [q["name"] for q in user.get("/v1/queues").json()["items"]]
    assert names == ["default"]
    science = new_queue(user, "science")
    assert science["paused"] is False and science["counts"]["QUEUED"] == 0 and science["total"] == 0
    assert user.get(science["url"]).json()["name"] == "science"
    problem(user.post("/v1/queues", json={"name": "science"}), 409)
    problem(user.post("/v1/queues", json={"name": "bad name!"}), 422)
    problem(user.delete(user.get("/v1/queues").json()["items"][-1]["url"]), 409)  # the default stays


def test_another_users_job_cannot_be_depended_on(make_user: ApiUserFactory) -> None:
    alice, bob = make_user(), make_user()
    job = tiny_job(alice)
    table = bob.post("/v1/files", params={"name": "t.csv"}, content=TABLE).json()
    body = {
        "app": "linfit",
        "params": {"x": "x", "y": "y"},
        "inputs": {"table": table["id"]},
        "depends_on": [job["id"]],
    }
    problem(bob.post("/v1/jobs", json=body), 404)


def test_queue_names_are_the_callers_own_and_never_look_like_ids(make_user: ApiUserFactory) -> None:
    alice, bob = make_user(), make_user()
    mine = new_queue(alice, "shared-name")
    theirs = new_queue(bob, "shared-name")
    assert alice.get("/v1/queues/shared-name").json()["id"] == mine["id"]
    assert bob.get("/v1/queues/shared-name").json()["id"] == theirs["id"]
    assert alice.get("/v1/queues/default").json()["owner"] != bob.get("/v1/queues/default").json()["owner"]
    problem(bob.post(f"/v1/queues/{mine['id']}/pause"), 404)
    assert alice.get(mine["url"]).json()["paused"] is False
    problem(alice.post("/v1/queues", json={"name": "01aaaaaaaaaaaaaaaaaaaaaaaa"}), 422)
