"""The results service's sweep against real Mongo, S3 and RabbitMQ: expiry once, lost packagings asked again once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from services.results.sweeps import Sweeper
from shared.broker import Broker
from shared.models import Archive, Job, JobState, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.tasks import PACKAGE_RESULTS
from tests.helpers.records import ended, in_store, package
from tests.helpers.stacks import delete_queues


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """Settings with a queue namespace of the test's own, so the stack's results worker never sees its messages."""
    mine = settings.model_copy(update={"queue_namespace": f"sweep-{new_id()}", "s3_create_bucket": True})
    yield mine
    delete_queues(mine.rabbitmq_url.get_secret_value(), mine.queue_namespace)


@pytest.fixture
def storage(own: Settings) -> Iterator[ObjectStorage]:
    client = ObjectStorage(own)
    client.ensure_bucket()
    yield client
    client.close()


@pytest.fixture
def broker(own: Settings) -> Iterator[Broker]:
    client = Broker(own)
    yield client
    client.close()


def stored_job(storage: ObjectStorage, **overrides: Any) -> Job:
    """An ended job with one log in S3."""
    job = ended(**overrides)
    key = f"jobs/{job.id}/logs/stdout.txt"
    storage.upload_fileobj(io.BytesIO(b"hello\n"), key, content_type="text/plain")
    return job.model_copy(update={"logs": {"stdout": key}})


def keys(s3: Any, settings: Settings, job: Job) -> list[str]:
    """What S3 holds under the job's prefix."""
    listing = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=f"jobs/{job.id}/")
    return [item["Key"] for item in listing.get("Contents", [])]


def sweepers(stores: Stores, storage: ObjectStorage, broker: Broker) -> list[Sweeper]:
    """Two sweepers, as two results workers run them (sharing clients, which changes nothing for their claims)."""
    return [Sweeper(archives=stores.archives, storage=storage, broker=broker, interval=1) for _ in range(2)]


def test_two_sweepers_at_once_expire_a_job_once_and_leave_no_object(
    own: Settings, storage: ObjectStorage, broker: Broker, s3: Any
) -> None:
    job = stored_job(storage, seconds_ago=120, retention_seconds=1)  # ended past the packaging grace

    async def scenario(stores: Stores) -> tuple[list[int], Job]:
        await stores.jobs.insert_job(job)
        await stores.archives.stamp_expiry(limit=10)
        done = await asyncio.gather(*(sweeper.expire_due() for sweeper in sweepers(stores, storage, broker)))
        return list(done), await stores.jobs.get_job(job.id)

    done, after = in_store(own, scenario)
    assert sorted(done) == [0, 1]
    assert after.expired is not None and after.state is JobState.SUCCEEDED
    assert keys(s3, own, job) == []


def test_a_job_within_its_retention_is_left_alone(
    own: Settings, storage: ObjectStorage, broker: Broker, s3: Any
) -> None:
    job = stored_job(storage, seconds_ago=5, retention_seconds=3600)

    async def scenario(stores: Stores) -> int:
        await stores.jobs.insert_job(job)
        expired, _ = await sweepers(stores, storage, broker)[0].sweep_once()
        return expired

    assert in_store(own, scenario) == 0
    assert keys(s3, own, job) == [f"jobs/{job.id}/logs/stdout.txt"]


def test_a_lost_packaging_is_asked_again_once_by_two_sweepers(
    own: Settings, storage: ObjectStorage, broker: Broker
) -> None:
    job = stored_job(storage, seconds_ago=3600)

    async def scenario(stores: Stores) -> list[int]:
        await stores.jobs.insert_job(job)
        return list(
            await asyncio.gather(*(sweeper.resend_unpackaged() for sweeper in sweepers(stores, storage, broker)))
        )

    assert sorted(in_store(own, scenario)) == [0, 1]
    assert broker.queue_stats([PACKAGE_RESULTS])[broker.queue(PACKAGE_RESULTS)]["messages"] == 1


def test_a_job_a_packager_holds_is_not_asked_again(own: Settings, storage: ObjectStorage, broker: Broker) -> None:
    building = stored_job(storage, seconds_ago=3600, packaging_lease=utcnow() + timedelta(minutes=2))
    died = stored_job(storage, seconds_ago=3600, packaging_lease=utcnow() - timedelta(seconds=1))

    async def scenario(stores: Stores) -> int:
        for job in (building, died):
            await stores.jobs.insert_job(job)
        return await sweepers(stores, storage, broker)[0].resend_unpackaged()

    assert in_store(own, scenario) == 1
    assert broker.queue_stats([PACKAGE_RESULTS])[broker.queue(PACKAGE_RESULTS)]["messages"] == 1


def test_an_expired_job_is_not_packaged(own: Settings, storage: ObjectStorage, broker: Broker, s3: Any) -> None:
    job = stored_job(storage, seconds_ago=3600, expired=utcnow() - timedelta(seconds=1))

    async def scenario(stores: Stores) -> Job:
        await stores.jobs.insert_job(job)
        await package(job.id, stores, storage=storage, broker=broker)
        return await stores.jobs.get_job(job.id)

    assert in_store(own, scenario).archive is None
    assert keys(s3, own, job) == [f"jobs/{job.id}/logs/stdout.txt"]


def test_no_archive_is_attached_while_a_sweeper_holds_the_job(own: Settings, storage: ObjectStorage) -> None:
    job = stored_job(storage, seconds_ago=3600, retention_seconds=60, expires=utcnow() - timedelta(minutes=59))
    archive = Archive(key=f"jobs/{job.id}/archive.tar.gz", size=1, sha256="0" * 64, created=utcnow())

    async def scenario(stores: Stores) -> tuple[Job | None, Job | None]:
        await stores.jobs.insert_job(job)
        packaging = utcnow() + timedelta(minutes=2)
        assert await stores.archives.claim_packaging(job.id, finished=job.finished, until=packaging) is not None
        lease = utcnow() + timedelta(minutes=10)
        assert await stores.archives.claim_expiry(job.id, until=lease) is not None
        # A packager that claimed the job before the sweeper's lease must not attach what it wrote meanwhile.
        refused = await stores.archives.set_archive(job.id, archive, finished=job.finished, lease=packaging)
        await stores.archives.mark_expired(job.id, lease=lease)
        return refused, await stores.archives.set_archive(job.id, archive, finished=job.finished, lease=packaging)

    assert in_store(own, scenario) == (None, None)
