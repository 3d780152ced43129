"""The archive store against the test Mongo: archives and selections attached once, expiry and resends claimed once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

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


def lease_from_now(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def test_archive_is_attached_once_and_its_lease_cleared(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None, Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        lease = lease_from_now(60)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease) is not None
        first = Archive(key="a", size=1, sha256="x", created=utcnow())
        second = Archive(key="b", size=2, sha256="y", created=utcnow())
        return (
            await stores.archives.set_archive(job.id, first, finished=job.finished, lease=lease),
            await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease_from_now(60)),
            await stores.archives.set_archive(job.id, second, finished=job.finished, lease=lease),
            await stores.jobs.get_job(job.id),
        )

    first, claimed_again, second, stored = in_store(settings, scenario)
    assert first is not None and claimed_again is None and second is None
    assert stored.archive is not None and stored.archive.key == "a" and stored.packaging_lease is None


def test_only_one_of_concurrent_packaging_claims_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[Job | None]:
        job = ended(5)
        await stores.jobs.insert_job(job)
        claims = (
            stores.archives.claim_packaging(job.id, finished=job.finished, until=lease_from_now(60 + n))
            for n in range(8)
        )
        return list(await asyncio.gather(*claims))

    assert sum(claim is not None for claim in in_store(settings, scenario)) == 1


def test_a_lapsed_packaging_lease_is_taken_over_and_its_holder_can_no_longer_use_it(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, bool, Job | None, Job]:
        job = ended(5)
        await stores.jobs.insert_job(job)
        lapsed = utcnow() - timedelta(seconds=1)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lapsed) is not None
        mine = lease_from_now(60)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=mine) is not None
        extended_by_old = await stores.archives.extend_packaging(job.id, lease=lapsed, until=lease_from_now(90))
        await stores.archives.release_packaging(job.id, lease=lapsed)  # not the old holder's to release any more
        extended = await stores.archives.extend_packaging(job.id, lease=mine, until=lease_from_now(120))
        archive = Archive(key="k", size=1, sha256="0" * 64, created=utcnow())
        refused = await stores.archives.set_archive(job.id, archive, finished=job.finished, lease=lapsed)
        return extended_by_old, extended, refused, await stores.jobs.get_job(job.id)

    extended_by_old, extended, refused, stored = in_store(settings, scenario)
    assert not extended_by_old and extended and refused is None
    assert stored.packaging_lease is not None and stored.packaging_lease > utcnow() + timedelta(seconds=90)


def test_a_released_packaging_lease_may_be_taken_at_once(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = ended(5)
        await stores.jobs.insert_job(job)
        lease = lease_from_now(60)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease) is not None
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease_from_now(61)) is None
        await stores.archives.release_packaging(job.id, lease=lease)
        return await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease_from_now(62))

    assert in_store(settings, scenario) is not None


def test_the_archive_of_an_earlier_run_is_not_attached_to_a_retried_job(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = make_job(state=JobState.FAILED, started=utcnow(), finished=utcnow())
        await stores.jobs.insert_job(job)
        lease = lease_from_now(60)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease) is not None
        change = forced(job, JobState.QUEUED, "retried")
        assert await stores.jobs.requeue_job(job, change) is not None
        return await stores.archives.set_archive(
            job.id, Archive(key="a", size=1, sha256="x", created=utcnow()), finished=job.finished, lease=lease
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


def test_an_expired_job_is_not_claimed_for_packaging(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = ended(5, expired=utcnow())
        await stores.jobs.insert_job(job)
        return await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease_from_now(60))

    assert in_store(settings, scenario) is None


def test_an_expired_job_gets_no_archive(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = ended(5, expires=utcnow() - timedelta(seconds=1))
        await stores.jobs.insert_job(job)
        lease = lease_from_now(60)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=lease) is not None
        expiry = lease_from_now(600)  # a sweeper expires it while the packager builds
        assert await stores.archives.claim_expiry(job.id, until=expiry) is not None
        assert await stores.archives.mark_expired(job.id, lease=expiry) is not None
        archive = Archive(key="k", size=1, sha256="0" * 64, created=utcnow())
        return await stores.archives.set_archive(job.id, archive, finished=job.finished, lease=lease)

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


def test_an_archive_rides_only_on_the_finish_of_the_current_run_and_is_then_never_packaged(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None, list[str]]:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="holder")
        assert claimed is not None
        at = utcnow() - timedelta(hours=1)  # ended long ago: a lost packaging would be asked again by now
        archive = Archive(key="runner", size=1, sha256="x", created=at)

        async def finish(run_token: str | None) -> Job | None:
            end = {"state": JobState.SUCCEEDED, "exit_code": 0, "error": None, "outputs": [], "logs": {}}
            end |= {"finished": at, "archive": archive}
            return await stores.jobs.finish_job(claimed.model_copy(update={"run_token": run_token, **end}))

        stale, holder = await finish("an-earlier-run"), await finish(claimed.run_token)
        lost = await stores.archives.unpackaged_jobs(finished_before=utcnow(), resent_before=utcnow(), limit=10)
        claim = await stores.archives.claim_packaging(job.id, finished=at, until=lease_from_now(60))
        return stale, holder, claim, lost

    stale, holder, claim, lost = in_store(settings, scenario)
    assert stale is None
    assert holder is not None and holder.archive is not None and holder.archive.key == "runner"
    assert holder.finished is not None and holder.finished < utcnow() - timedelta(minutes=59)
    assert claim is None and lost == []
