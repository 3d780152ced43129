"""Counting the active jobs a caller may see: pure logic, no servers."""

from __future__ import annotations

from services.gateway.domain.cluster import ActiveJobs, count_active
from shared.models import JobState
from shared.store.jobs import ActiveCount

ROWS = [
    ActiveCount(owner="u1", queue="default", app="flood", state=JobState.RUNNING, n=2),
    ActiveCount(owner="u1", queue="default", app="flood", state=JobState.QUEUED, n=5),
    ActiveCount(owner="u1", queue="night", app="echo", state=JobState.QUEUED, n=1),
    ActiveCount(owner="u2", queue="default", app="flood", state=JobState.RUNNING, n=3),
]


def test_a_callers_jobs_are_counted_per_app_and_per_queue_by_name() -> None:
    assert count_active(ROWS[:3], everyone=False) == ActiveJobs(
        everyone=False,
        queued=6,
        running=2,
        by_app={"flood": {"RUNNING": 2, "QUEUED": 5}, "echo": {"QUEUED": 1}},
        by_queue={"default": {"RUNNING": 2, "QUEUED": 5}, "night": {"QUEUED": 1}},
    )


def test_everyones_queues_are_told_apart_by_their_owner() -> None:
    counted = count_active(ROWS, everyone=True)
    assert counted.by_queue == {
        "u1/default": {"RUNNING": 2, "QUEUED": 5},
        "u1/night": {"QUEUED": 1},
        "u2/default": {"RUNNING": 3},
    }
    assert counted.by_app == {"flood": {"RUNNING": 5, "QUEUED": 5}, "echo": {"QUEUED": 1}}
    assert (counted.queued, counted.running) == (6, 5)


def test_no_active_jobs_count_zero() -> None:
    assert count_active([], everyone=False) == ActiveJobs(everyone=False, queued=0, running=0, by_app={}, by_queue={})
