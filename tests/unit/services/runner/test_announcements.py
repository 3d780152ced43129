"""Progress announcements: sent only when a receiver asked for progress, and at most once per interval."""

from __future__ import annotations

import asyncio
import time

import structlog

from services.runner.announcements import ProgressAnnouncer
from shared.errors import Unavailable
from shared.models import Job, JobState
from tests.helpers.records import ended_job


def job() -> Job:
    running = {"state": JobState.RUNNING, "finished": None}
    return ended_job("https://hooks.example.com/").model_copy(update=running | {"webhook": None})


def announced(announcer: ProgressAnnouncer, events: list[str | None]) -> None:
    """Feed ``events`` as ticks would, then let the sends finish."""

    async def main() -> None:
        for event_id in events:
            await announcer(event_id)
        await announcer.close()

    asyncio.run(main())


def test_reports_within_the_interval_wait_and_the_newest_goes_when_it_ends() -> None:
    sent: list[str] = []
    announcer = ProgressAnnouncer(job(), sent.append, every=0.3, wanted=True)
    announced(announcer, ["e1", "e2", "e3"])
    assert sent == ["e1"]
    time.sleep(0.35)
    announced(announcer, [None])  # a quiet tick after the interval: e3, the newest, goes now
    assert sent == ["e1", "e3"]


def test_a_send_that_fails_loses_only_that_report() -> None:
    def refuse(event_id: str) -> None:
        raise RuntimeError("broker gone")

    with structlog.testing.capture_logs() as logs:
        announced(ProgressAnnouncer(job(), refuse, every=0, wanted=True), ["e1", "e2"])
    lost = [entry for entry in logs if entry["event"] == "webhook_progress_lost"]
    assert len(lost) == 2 and "broker gone" in lost[0]["error"]


def test_an_interval_of_zero_sends_every_report() -> None:
    sent: list[str] = []
    announced(ProgressAnnouncer(job(), sent.append, every=0, wanted=True), ["e1", "e2", "e3"])
    assert sent == ["e1", "e2", "e3"]


def test_nothing_is_sent_when_no_receiver_asked_for_progress() -> None:
    sent: list[str] = []
    announced(ProgressAnnouncer(job(), sent.append, every=0, wanted=False), ["e1", "e2"])
    assert sent == []


def test_receivers_are_looked_up_at_the_first_report_and_only_then() -> None:
    sent: list[str] = []
    lookups: list[str] = []

    async def wants_progress() -> bool:
        lookups.append("read")
        return True

    announcer = ProgressAnnouncer(job(), sent.append, every=0, wanted=wants_progress)
    announced(announcer, [None, None])
    assert lookups == [] and sent == []
    announced(announcer, ["e1", None, "e2"])
    assert lookups == ["read"] and sent == ["e1", "e2"]


def test_a_failed_lookup_of_receivers_announces_nothing_for_the_run() -> None:
    sent: list[str] = []

    async def unreachable() -> bool:
        raise Unavailable("Mongo is away")

    with structlog.testing.capture_logs() as logs:
        announced(ProgressAnnouncer(job(), sent.append, every=0, wanted=unreachable), ["e1", "e2"])
    assert sent == []
    assert [entry["event"] for entry in logs] == ["webhook_progress_lookup_failed"]
