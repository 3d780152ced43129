"""Signed webhooks over the real stack, to receivers on loopback (the test stack's WEBHOOK_ALLOWED_NETWORKS)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.helpers.clients import UserFactory, eventually, script_app, signing_secret, tiny_job, wait_for
from tests.helpers.receiver import Received, receiver

TOLERANCE_SECONDS = 300


def verify(secret: str, request: Received) -> dict[str, Any]:
    """docs/webhooks.md's verification, as a receiver does it: the event if the signature holds."""
    fields = dict(part.split("=", 1) for part in request.headers["Quern-Signature"].split(","))
    signed = fields["t"].encode() + b"." + request.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"]), "bad signature"
    assert abs(time.time() - int(fields["t"])) < TOLERANCE_SECONDS, "stale timestamp"
    event: dict[str, Any] = json.loads(request.body)
    return event


@pytest.fixture
def user(make_user: UserFactory) -> httpx.Client:
    return make_user()


def wait_for_deliveries(user: httpx.Client, job_id: str, *, done: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items: list[dict[str, Any]] = user.get(f"/v1/jobs/{job_id}/deliveries").json()["items"]
        if sum(item["state"] != "pending" for item in items) >= done:
            return items
        assert time.monotonic() < deadline, f"deliveries still pending: {items}"
        time.sleep(0.1)


def test_a_receiver_answering_500_twice_gets_one_signed_successful_delivery(user: httpx.Client) -> None:
    secret = signing_secret(user)
    with receiver(500, 500) as hook:
        job = tiny_job(user, webhook={"url": hook.url})
        assert job["webhook"] == {"url": hook.url, "progress": False}
        (delivery,) = wait_for_deliveries(user, job["id"])
        with pytest.raises(AssertionError):  # nothing more arrives once it succeeded
            hook.wait_for(4, timeout=1)
        requests = list(hook.received)
    assert [request.status for request in requests] == [500, 500, 200]
    events = [verify(secret, request) for request in requests]
    assert all(request.body.decode() == delivery["body"] for request in requests)
    assert events[0]["type"] == "job.succeeded" and events[0]["job"]["id"] == job["id"]
    assert events[0]["job"]["archive"]["sha256"] == wait_for(user, job["id"])["archive"]["sha256"]
    assert requests[0].headers["Quern-Event"] == "job.succeeded"
    assert {request.headers["Quern-Delivery"] for request in requests} == {delivery["id"]}
    assert delivery["state"] == "succeeded" and delivery["url"] == hook.url and delivery["webhook"] is None
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [500, 500, 200]


def test_a_receiver_slower_than_the_timeout_is_tried_again(user: httpx.Client) -> None:
    signing_secret(user)
    with receiver(("sleep", 1.5, 200)) as hook:
        job = tiny_job(user, webhook={"url": hook.url})
        (delivery,) = wait_for_deliveries(user, job["id"])
    first, second = delivery["attempts"]
    assert first["status_code"] is None and "no answer within" in first["error"]
    assert second["status_code"] == 200 and delivery["state"] == "succeeded"


def test_registered_webhooks_get_the_events_of_jobs_without_their_own(user: httpx.Client) -> None:
    secret = signing_secret(user)
    with receiver() as first, receiver() as second:
        ids = [user.post("/v1/webhooks", json={"url": hook.url}).json()["id"] for hook in (first, second)]
        job = tiny_job(user, exit_code=3)
        deliveries = wait_for_deliveries(user, job["id"], done=2)
        (one,), (other,) = first.wait_for(1), second.wait_for(1)
    assert sorted(delivery["webhook"] for delivery in deliveries) == sorted(ids)
    assert verify(secret, one)["type"] == verify(secret, other)["type"] == "job.failed"
    assert [item["target"] for item in user.get("/v1/webhooks").json()["items"]] == [second.url, first.url]


def test_a_webhook_registered_while_a_job_runs_gets_its_end(user: httpx.Client) -> None:
    secret = signing_secret(user)
    job = tiny_job(user, seconds=3)
    eventually(lambda: user.get(f"/v1/jobs/{job['id']}").json()["state"] == "RUNNING" or None, "the job running")
    with receiver() as hook:
        webhook = user.post("/v1/webhooks", json={"url": hook.url}).json()
        (request,) = hook.wait_for(1)
        (delivery,) = wait_for_deliveries(user, job["id"])
    event = verify(secret, request)
    assert event["type"] == "job.succeeded" and event["job"]["id"] == job["id"]
    assert delivery["webhook"] == webhook["id"] and delivery["state"] == "succeeded"


def test_a_job_canceled_before_it_ran_is_announced_too(user: httpx.Client) -> None:
    secret = signing_secret(user)
    queue = user.post("/v1/queues", json={"name": "held"}).json()
    assert user.post(f"/v1/queues/{queue['id']}/pause").status_code == 200
    with receiver() as hook:
        job = tiny_job(user, queue="held", webhook={"url": hook.url})
        assert user.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "CANCELED"
        (request,) = hook.wait_for(1)
        (delivery,) = wait_for_deliveries(user, job["id"])
    event = verify(secret, request)
    assert event["type"] == "job.canceled" and event["job"]["started"] is None and event["job"]["archive"] is None
    assert delivery["state"] == "succeeded" and len(delivery["attempts"]) == 1


def test_a_job_failed_by_its_dependency_is_announced_too(user: httpx.Client) -> None:
    signing_secret(user)
    with receiver() as hook:
        failing = tiny_job(user, exit_code=3)
        waiting = tiny_job(user, depends_on=[failing["id"]], webhook={"url": hook.url})
        (request,) = hook.wait_for(1)
    event = json.loads(request.body)
    assert event["type"] == "job.failed" and event["job"]["id"] == waiting["id"]
    assert "dependency" in event["job"]["error"]["reason"]


# No braces in the script: the app's command would read them as placeholders.
STEPS = """
import time
for percent in (25, 50, 75):
    print('##quern progress %d "part %d"' % (percent, percent), flush=True)
    time.sleep(1.3)
open("done.txt", "w").write("done")
"""


def test_a_receiver_that_asked_for_progress_gets_signed_progress_then_the_end(
    user: httpx.Client, admin: httpx.Client
) -> None:
    secret = signing_secret(user)
    app = script_app(admin, STEPS, args=[], text_param=False, outputs=["done.txt"])
    with receiver() as hook:
        answer = user.post("/v1/jobs", json={"app": app, "webhook": {"url": hook.url, "progress": True}})
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert job["webhook"] == {"url": hook.url, "progress": True}
        ended = wait_for(user, job["id"])
        assert ended["state"] == "SUCCEEDED", ended["error"]
        deliveries = wait_for_deliveries(user, job["id"], done=4)
        events = [verify(secret, request) for request in hook.wait_for(4)]
    progress = [event for event in events if event["type"] == "job.progress"]
    assert [event["job"]["progress"]["percent"] for event in progress] == [25, 50, 75]
    assert all(event["job"]["state"] == "RUNNING" for event in progress)
    assert [event["type"] for event in events].count("job.succeeded") == 1
    assert {delivery["event"] for delivery in deliveries} == {"job.progress", "job.succeeded"}


def test_a_registered_webhook_without_progress_gets_only_the_end(user: httpx.Client, admin: httpx.Client) -> None:
    signing_secret(user)
    app = script_app(admin, STEPS, args=[], text_param=False, outputs=["done.txt"])
    with receiver() as quiet, receiver() as chatty:
        for hook, progress in ((quiet, False), (chatty, True)):
            created = user.post("/v1/webhooks", json={"url": hook.url, "progress": progress}).json()
            assert created["progress"] is progress
        job = user.post("/v1/jobs", json={"app": app}).json()
        wait_for_deliveries(user, job["id"], done=5)
        (end,) = quiet.received
        kinds = [json.loads(request.body)["type"] for request in chatty.received]
    assert json.loads(end.body)["type"] == "job.succeeded"
    assert sorted(kinds) == ["job.progress"] * 3 + ["job.succeeded"]
