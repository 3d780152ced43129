"""Progress announcements: sent only when a receiver asked for progress, and at most once per interval."""

from __future__ import annotations

import asyncio
import time

from services.runner.announcements import ProgressAnnouncer
from shared.models import Job, JobState
from tests.services.results.test_webhooks import ended_job


def job() -> Job:
    running = {"state": JobState.RUNNING, "finished": None}
    return ended_job("https://hooks.example.com/").model_copy(update=running | {"webhook": None})


def announced(announcer_of: ProgressAnnouncer, events: list[str], pause: float = 0.0) -> None:
    async def main() -> None:
        for event_id in events:
            await announcer_of(event_id)
            await asyncio.sleep(pause)

    asyncio.run(main())


def test_reports_within_the_interval_of_the_last_one_sent_are_skipped() -> None:
    sent: list[str] = []
    announcer = ProgressAnnouncer(job(), sent.append, every=0.3, wanted=True)
    announced(announcer, ["e1", "e2", "e3"])
    time.sleep(0.35)
    announced(announcer, ["e4", "e5"])
    assert sent == ["e1", "e4"]


def test_an_interval_of_zero_sends_every_report() -> None:
    sent: list[str] = []
    announced(ProgressAnnouncer(job(), sent.append, every=0, wanted=True), ["e1", "e2", "e3"])
    assert sent == ["e1", "e2", "e3"]


def test_nothing_is_sent_when_no_receiver_asked_for_progress() -> None:
    sent: list[str] = []
    announced(ProgressAnnouncer(job(), sent.append, every=0, wanted=False), ["e1", "e2"])
    assert sent == []
