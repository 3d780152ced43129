"""The archive store against the test Mongo: archives and selections attached once, expiry and resends claimed once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared.models import (
    Archive,
    Job,
    JobState,
    Selection,
    utcnow,
)
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import ended, forced, in_store, make_job


def test_archive_is_attached_once(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        first = Archive(key="a", size=1, sha256="x", created=utcnow())
        second = Archive(key="b", size=2, sha256="y", created=utcnow())
        return (
            await stores.archives.set_archive(job.id, first, finished=job.finished),
            await stores.archives.set_archive(job.id, second, finished=job.finished),
            await stores.jobs.get_job(job.id),
        )

    first, second, stored = in_store(settings, scenario)
    assert first is not None and second is None
    assert stored.archive is not None and stored.archive.key == "a"


def test_the_archive_of_an_earlier_run_is_not_attached_to_a_retried_job(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = make_job(state=JobState.FAILED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        change = forced(job, JobState.QUEUED, "retried")
        assert await stores.jobs.requeue_job(job, change) is not None
        return await stores.archives.set_archive(
            job.id, Archive(key="a", size=1, sha256="x", created=utcnow()), finished=job.finished
        )

    assert in_store(settings, scenario) is None


def test_of_concurrent_requests_for_one_selection_only_one_enqueues_its_packaging(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[bool]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        racing = [
            stores.archives.request_selection(job, "d1", selection, resend_before=now - timedelta(minutes=15))
            for _ in range(4)
        ]
        return list(await asyncio.gather(*racing))

    assert sorted(in_store(settings, scenario)) == [False, False, False, True]


def test_a_selection_asked_for_long_ago_and_never_packaged_is_enqueued_again(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, bool]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        old = Selection(include=["*.csv"], requested=utcnow() - timedelta(hours=1))
        await stores.archives.request_selection(job, "d1", old, resend_before=utcnow() - timedelta(hours=2))
        now = utcnow()
        fresh = Selection(include=["*.csv"], requested=now)
        return (
            await stores.archives.request_selection(job, "d1", fresh, resend_before=now - timedelta(hours=2)),
            await stores.archives.request_selection(job, "d1", fresh, resend_before=now - timedelta(minutes=15)),
        )

    assert in_store(settings, scenario) == (False, True)


def test_a_released_selection_may_be_asked_for_again(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, Job]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        await stores.archives.request_selection(job, "d1", selection, resend_before=now - timedelta(minutes=15))
        await stores.archives.release_selection(job.id, "d1", requested=now)
        stored = await stores.jobs.get_job(job.id)
        return await stores.archives.request_selection(job, "d1", selection, resend_before=now), stored

    again, released = in_store(settings, scenario)
    assert released.selections == {} and again is True


def test_a_selections_archive_is_attached_once_and_cleared_when_the_job_is_retried(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None]:
        job = make_job(state=JobState.FAILED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        await stores.archives.request_selection(job, "d1", selection, resend_before=now)
        first = Archive(key="a", size=1, sha256="x", created=utcnow())
        attached = await stores.archives.set_selection_archive(job.id, "d1", first, finished=job.finished)
        twice = await stores.archives.set_selection_archive(job.id, "d1", first, finished=job.finished)
        return attached, twice, await stores.jobs.requeue_job(job, forced(job, JobState.QUEUED, "retried"))

    attached, twice, retried = in_store(settings, scenario)
    assert attached is not None and attached.selections["d1"].archive is not None
    assert twice is None
    assert retried is not None and retried.selections == {}


def test_expiry_is_stamped_as_the_end_plus_the_retention(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job, Job]:
        job, kept = ended(5, retention_seconds=60), ended(5)
        await stores.jobs.insert_job(job)
        await stores.jobs.insert_job(kept)
        await stores.archives.stamp_expiry(limit=10)
        return await stores.jobs.get_job(job.id), await stores.jobs.get_job(kept.id)

    job, kept = in_store(settings, scenario)
    assert job.finished is not None and job.expires == job.finished + timedelta(seconds=60)
    assert kept.expires is None


def test_an_unpackaged_job_is_not_due_for_expiry_until_its_packaging_is_given_up(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[str]:
        now = utcnow()
        fresh, old = ended(5, expires=now - timedelta(seconds=1)), ended(600, expires=now - timedelta(seconds=1))
        for job in (fresh, old):
            await stores.jobs.insert_job(job)
        due = await stores.archives.due_for_expiry(now=utcnow(), packaged_by=now - timedelta(seconds=60), limit=10)
        return [{fresh.id: "fresh", old.id: "old"}[job_id] for job_id in due]

    assert in_store(settings, scenario) == ["old"]


def test_only_one_of_concurrent_expiry_claims_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[Job | None]:
        job = ended(5, expires=utcnow() - timedelta(seconds=1))
        await stores.jobs.insert_job(job)
        later = utcnow() + timedelta(minutes=10)
        return list(await asyncio.gather(*(stores.archives.claim_expiry(job.id, until=later) for _ in range(8))))

    claims = in_store(settings, scenario)
    assert sum(claim is not None for claim in claims) == 1


def test_an_expired_job_gets_no_archive(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = ended(5, expired=utcnow())
        await stores.jobs.insert_job(job)
        archive = Archive(key="k", size=1, sha256="0" * 64, created=utcnow())
        return await stores.archives.set_archive(job.id, archive, finished=job.finished)

    assert in_store(settings, scenario) is None


def test_only_one_of_concurrent_packaging_resends_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[bool]]:
        job = ended(3600)
        await stores.jobs.insert_job(job)
        before = utcnow() - timedelta(minutes=10)
        lost = await stores.archives.unpackaged_jobs(finished_before=before, resent_before=before, limit=10)
        claims = await asyncio.gather(
            *(stores.archives.claim_packaging_resend(job.id, resent_before=before) for _ in range(4))
        )
        return lost, list(claims)

    lost, claims = in_store(settings, scenario)
    assert len(lost) == 1 and claims.count(True) == 1
