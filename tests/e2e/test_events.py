"""Job events: the flood example's stream from QUEUED to its end, resuming, progress on the job, the caller's stream."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.clients import (
    UserFactory,
    long_job,
    read_stream,
    run_flood,
    states,
    tiny_job,
    wait_for,
    wait_for_app,
)


@pytest.fixture(scope="module")
def flood(make_user: UserFactory, project: Path) -> tuple[httpx.Client, str, list[dict[str, Any]]]:
    """A user, their finished flood job, and the job's whole event stream read while it ran."""
    user = make_user()
    job = run_flood(user, project, steps=300)
    return user, job["id"], read_stream(user, f"/v1/jobs/{job['id']}/events")


def test_the_stream_runs_from_queued_through_progress_and_logs_to_the_end(
    flood: tuple[httpx.Client, str, list[dict[str, Any]]],
) -> None:
    _, job_id, events = flood
    assert states(events) == ["QUEUED", "RUNNING", "SUCCEEDED"]
    kinds = [e["event"] for e in events]
    terminal = max(i for i, kind in enumerate(kinds) if kind == "state")
    assert kinds[:2] == ["state", "state"] and set(kinds[terminal + 1 :]) <= {"archive"}
    percents = [e["data"]["data"]["percent"] for e in events if e["event"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100
    logs = [e["data"]["data"] for e in events if e["event"] == "log"]
    assert any(log["stream"] == "stdout" and any("flooded" in line for line in log["lines"]) for log in logs)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["data"]["job_id"] == job_id and e["data"]["id"] == e["id"] for e in events)
    assert events[terminal]["data"]["data"]["exit_code"] == 0


def test_resuming_with_last_event_id_gives_only_later_events(
    flood: tuple[httpx.Client, str, list[dict[str, Any]]],
) -> None:
    user, job_id, events = flood
    middle = events[len(events) // 2]["id"]
    expected = [e["id"] for e in events if e["id"] > middle and e["event"] != "archive"]
    # The archive event may have been recorded since the first read ended.
    later = read_stream(user, f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": middle})
    assert [e["id"] for e in later if e["event"] != "archive"] == expected
    by_query = read_stream(user, f"/v1/jobs/{job_id}/events", params={"after": middle})
    assert [e["id"] for e in by_query if e["event"] != "archive"] == expected


def test_a_finished_job_shows_its_last_progress(flood: tuple[httpx.Client, str, list[dict[str, Any]]]) -> None:
    user, job_id, _ = flood
    job = wait_for(user, job_id)
    assert job["progress"]["percent"] == 100 and job["progress"]["step"] == "routing step 300/300"
    assert job["links"]["events"].endswith(f"/v1/jobs/{job_id}/events")


def test_the_callers_stream_has_their_events_only_and_ends_when_quiet(
    flood: tuple[httpx.Client, str, list[dict[str, Any]]], make_user: UserFactory
) -> None:
    user, job_id, _ = flood
    other = make_user()
    other_job = wait_for(other, tiny_job(other)["id"])
    with ThreadPoolExecutor(2) as pool:  # each stream waits its two quiet seconds: side by side
        mine, theirs = pool.map(lambda caller: read_stream(caller, "/v1/events", params={"wait": 2}), (user, other))
    assert {e["data"]["job_id"] for e in mine} == {job_id}
    assert {"state", "progress", "log"} <= {e["event"] for e in mine}
    assert {e["data"]["job_id"] for e in theirs} == {other_job["id"]}


def test_a_cancelled_jobs_stream_shows_the_request_and_ends_canceled(make_user: UserFactory) -> None:
    user = make_user()
    job = long_job(user)
    wait_for_app(job["id"])
    assert user.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    events = read_stream(user, f"/v1/jobs/{job['id']}/events")
    assert states(events) == ["QUEUED", "RUNNING", "RUNNING", "CANCELED"]
    requested = [e["data"]["data"] for e in events if e["event"] == "state"][2]
    assert requested == {"state": "RUNNING", "cancel_requested": True}
    assert [e for e in events if e["event"] == "state"][-1]["data"]["data"]["reason"] == (
        "canceled on request while it ran"
    )


def test_a_disabled_users_open_stream_ends_within_ten_seconds(admin: httpx.Client, make_user: UserFactory) -> None:
    user = make_user()
    user_id = user.get("/v1/me").json()["id"]
    with user.stream("GET", "/v1/events", params={"wait": 300}, timeout=60) as answer:
        assert answer.status_code == 200
        assert admin.delete(f"/v1/users/{user_id}").status_code == 200
        disabled = time.monotonic()
        for _ in answer.iter_lines():
            assert time.monotonic() - disabled < 20, "the stream went on"
        took = time.monotonic() - disabled
    assert took < 10  # STREAM_RECHECK_SECONDS is 5 by default, and at most 10
    assert user.get("/v1/me").status_code == 401
