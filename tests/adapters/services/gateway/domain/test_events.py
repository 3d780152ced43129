"""Following events against a real Mongo: which events come, and that every stream ends on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ulid import ULID

from services.gateway.domain.events import KeepAlive, caller_events, follow_job
from shared.errors import BadCredentials, NotFound
from shared.models import Event, Job, JobState, job_event
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import ended, in_store, make_job

# Far more than any stream below should take: a stream that does not end fails the test instead of hanging it.
DEADLINE_SECONDS = 15


async def never_lapses() -> None:
    """The credential check of a stream whose caller stays signed in."""


def settled(job: Job, states: list[str], seconds_ago: float = 5) -> list[Event]:
    """State events of ``job``'s, in order, recorded long enough ago for streams to send them."""
    start = time.time() - seconds_ago
    return [
        job_event(job, "state", {"state": state}).model_copy(
            update={"id": str(ULID.from_timestamp(start + index / 100)).lower()}
        )
        for index, state in enumerate(states)
    ]


async def drain(followed: AsyncIterator[Event | KeepAlive]) -> list[Event | KeepAlive]:
    """Everything a stream yields until it ends by itself."""

    async def collect() -> list[Event | KeepAlive]:
        return [item async for item in followed]

    return await asyncio.wait_for(collect(), DEADLINE_SECONDS)


def test_a_jobs_stream_ends_once_its_terminal_state_is_sent(settings: Settings) -> None:
    job = make_job(state=JobState.RUNNING)

    async def scenario(stores: Stores) -> Any:
        await stores.jobs.insert_job(job)
        await stores.events.insert_events(settled(job, ["QUEUED", "RUNNING", "SUCCEEDED"]))
        followed = await follow_job(
            job.id, owner=job.owner, after=None, jobs=stores.jobs, events=stores.events, check=never_lapses
        )
        return await drain(followed)

    followed = in_store(settings, scenario)
    assert [item.data["state"] for item in followed if isinstance(item, Event)] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert len(followed) == 3


def test_a_jobs_stream_resumes_after_the_given_event(settings: Settings) -> None:
    job = make_job(state=JobState.RUNNING)
    events = settled(job, ["QUEUED", "RUNNING", "FAILED"])

    async def scenario(stores: Stores) -> Any:
        await stores.jobs.insert_job(job)
        await stores.events.insert_events(events)
        return await drain(
            await follow_job(
                job.id, owner=None, after=events[0].id, jobs=stores.jobs, events=stores.events, check=never_lapses
            )
        )

    assert in_store(settings, scenario) == events[1:]


def test_the_stream_of_a_job_that_ended_long_ago_with_nothing_left_to_send_ends(settings: Settings) -> None:
    job = ended(seconds_ago=60)
    events = settled(job, ["QUEUED"], seconds_ago=70)  # its terminal event never arrived

    async def scenario(stores: Stores) -> Any:
        await stores.jobs.insert_job(job)
        await stores.events.insert_events(events)
        return await drain(
            await follow_job(job.id, owner=None, after=None, jobs=stores.jobs, events=stores.events, check=never_lapses)
        )

    assert in_store(settings, scenario) == events


def test_following_someone_elses_job_is_not_found_before_anything_streams(settings: Settings) -> None:
    job = make_job(owner="u1")

    async def scenario(stores: Stores) -> Any:
        await stores.jobs.insert_job(job)
        with pytest.raises(NotFound):
            await follow_job(job.id, owner="u2", after=None, jobs=stores.jobs, events=stores.events, check=never_lapses)

    in_store(settings, scenario)


def test_a_callers_stream_sends_only_their_events_and_ends_after_wait_seconds_without_one(settings: Settings) -> None:
    mine, theirs = make_job(owner="u1"), make_job(owner="u2")
    events = settled(mine, ["QUEUED"])

    async def scenario(stores: Stores) -> Any:
        await stores.events.insert_events([*events, *settled(theirs, ["QUEUED"])])
        started = time.monotonic()
        followed = await drain(caller_events("u1", after=None, wait=1, events=stores.events, check=never_lapses))
        return followed, time.monotonic() - started

    followed, took = in_store(settings, scenario)
    assert followed == events
    assert 1 <= took < DEADLINE_SECONDS


def test_a_stream_ends_once_its_callers_credential_lapses(settings: Settings) -> None:
    job = make_job(owner="u1", state=JobState.RUNNING)
    lapsed_at = time.monotonic() + 1

    async def lapses_after_a_second() -> None:
        if time.monotonic() >= lapsed_at:
            raise BadCredentials("this account is disabled")

    async def scenario(stores: Stores) -> Any:
        await stores.jobs.insert_job(job)
        await stores.events.insert_events(settled(job, ["QUEUED", "RUNNING"]))
        followed = await follow_job(
            job.id, owner=None, after=None, jobs=stores.jobs, events=stores.events, check=lapses_after_a_second
        )
        return await drain(followed), time.monotonic() - lapsed_at

    followed, late = in_store(settings, scenario)
    assert [item.data["state"] for item in followed if isinstance(item, Event)] == ["QUEUED", "RUNNING"]
    assert 0 <= late < 2  # the running job's stream would otherwise go on
