"""Job events: the flood example's stream from QUEUED to its end, resuming, progress on the job, isolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory
from tests.e2e.test_cancel import long_job
from tests.e2e.test_runner_shutdown import wait_for_app
from tests.e2e.test_walking_skeleton import run_flood, wait_for

pytestmark = pytest.mark.e2e


def read_stream(user: httpx.Client, path: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of a stream that must end by itself: id, event type and data."""
    events: list[dict[str, Any]] = []
    with user.stream("GET", path, timeout=60, **kwargs) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in answer.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    events.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    return events


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["data"]["state"] for e in events if e["event"] == "state"]


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


def test_another_users_job_stream_is_404(
    flood: tuple[httpx.Client, str, list[dict[str, Any]]], make_user: UserFactory
) -> None:
    _, job_id, _ = flood
    assert make_user().get(f"/v1/jobs/{job_id}/events").status_code == 404


def test_the_callers_stream_has_their_events_only_and_ends_when_quiet(
    flood: tuple[httpx.Client, str, list[dict[str, Any]]], make_user: UserFactory, project: Path
) -> None:
    user, job_id, _ = flood
    other = make_user()
    other_job = wait_for(other, run_flood(other, project, steps=2)["id"])
    mine = read_stream(user, "/v1/events", params={"wait": 2})
    assert {e["data"]["job_id"] for e in mine} == {job_id}
    assert {"state", "progress", "log"} <= {e["event"] for e in mine}
    theirs = read_stream(other, "/v1/events", params={"wait": 2})
    assert {e["data"]["job_id"] for e in theirs} == {other_job["id"]}


def test_a_malformed_resume_point_is_400(flood: tuple[httpx.Client, str, list[dict[str, Any]]]) -> None:
    user, job_id, _ = flood
    assert user.get(f"/v1/jobs/{job_id}/events", params={"after": "nope"}).status_code == 400
    assert user.get("/v1/events", params={"wait": 301}).status_code == 400


def test_a_cancelled_jobs_stream_shows_the_request_and_ends_canceled(make_user: UserFactory, project: Path) -> None:
    user = make_user()
    job = long_job(user, project)
    wait_for_app(job["id"])
    assert user.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    events = read_stream(user, f"/v1/jobs/{job['id']}/events")
    assert states(events) == ["QUEUED", "RUNNING", "RUNNING", "CANCELED"]
    requested = [e["data"]["data"] for e in events if e["event"] == "state"][2]
    assert requested == {"state": "RUNNING", "cancel_requested": True}
    assert [e for e in events if e["event"] == "state"][-1]["data"]["data"]["reason"] == (
        "canceled on request while it ran"
    )
