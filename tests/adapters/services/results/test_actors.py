"""The results actors against real Mongo and S3."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.results.actors import package_selection
from services.results.leases import PackagingLease
from shared.broker import Broker
from shared.errors import Unavailable
from shared.models import Job, JobState, OutputFile, Selection, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores
from tests.helpers.records import ended, in_store, package
from tests.helpers.stacks import delete_queues


def stored_output(storage: ObjectStorage, job_id: str, path: str, data: bytes) -> OutputFile:
    key = f"jobs/{job_id}/outputs/{path}"
    sink = storage.sink(key, content_type="text/plain")
    sink.write(data)
    sink.finish()
    return OutputFile(
        path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type="text/plain", key=key
    )


def test_two_packagers_of_one_selection_leave_one_archive_of_only_its_outputs(settings: Settings) -> None:
    own = settings.model_copy(update={"mongo_database": f"results_{new_id()}"})
    storage = ObjectStorage(own)
    storage.ensure_bucket()
    job_id = new_id()
    outputs = [stored_output(storage, job_id, path, path.encode()) for path in ("a.csv", "b.json", "maps/c.csv")]

    async def scenario() -> tuple[Job, list[Any]]:
        stores = Stores.connect(own, appname="quern-tests")
        try:
            now = utcnow()
            job = Job(
                id=job_id,
                owner="u1",
                app="flood",
                app_version="1",
                params={},
                inputs={},
                timeout_seconds=60,
                created=now,
                started=now,
                finished=now,
                state=JobState.SUCCEEDED,
                outputs=outputs,
            )
            await stores.jobs.insert_job(job)
            await stores.archives.request_selection(
                job, "d1", Selection(include=["**/*.csv"], requested=now), resend_before=now
            )
            both = [
                package_selection(job_id, "d1", jobs=stores.jobs, archives=stores.archives, storage=storage)
                for _ in range(2)
            ]
            results = await asyncio.gather(*both, return_exceptions=True)
            return await stores.jobs.get_job(job_id), results
        finally:
            await stores.close()

    try:
        job, results = asyncio.run(scenario())
        assert results == [None, None]
        archive = job.selections["d1"].archive
        assert archive is not None and archive.key == f"jobs/{job_id}/archives/d1.tar.gz"
        body = storage.open(archive.key)
        data = body.read()
        body.close()
        assert hashlib.sha256(data).hexdigest() == archive.sha256
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            names = {member.name for member in tar.getmembers()}
        assert names == {f"{job_id}/outputs/a.csv", f"{job_id}/outputs/maps/c.csv", f"{job_id}/manifest.json"}
    finally:
        storage.delete_prefix(f"jobs/{job_id}/")
        storage.close()


@pytest.fixture
def versioned(settings: Settings, s3: Any) -> Iterator[tuple[Settings, ObjectStorage]]:
    """Settings with a database, queues and a versioned bucket of the test's own: each put of a key is a version."""
    own = settings.model_copy(
        update={
            "mongo_database": f"results_{new_id()}",
            "queue_namespace": f"pack-{new_id()}",
            "s3_bucket": f"quern-pack-{uuid.uuid4().hex[:12]}",
        }
    )
    storage = ObjectStorage(own)
    storage.ensure_bucket()
    s3.put_bucket_versioning(Bucket=own.s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    yield own, storage
    storage.close()
    delete_queues(own.rabbitmq_url.get_secret_value(), own.queue_namespace)


def puts(s3: Any, bucket: str, key: str) -> int:
    """How many times ``key`` was written."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return len([version for version in listing.get("Versions", []) if version["Key"] == key])


def run_packagers(own: Settings, storage: ObjectStorage, job: Job, times: int) -> tuple[list[float | None], Job, int]:
    """Store ``job`` with a log in S3 and run ``times`` packagers of it at once: their answers, the job, its
    archive events."""
    key = f"jobs/{job.id}/logs/stdout.txt"
    storage.upload_fileobj(io.BytesIO(b"hello\n" * 1000), key, content_type="text/plain")

    async def main() -> tuple[list[float | None], Job, int]:
        stores = Stores.connect(own, appname="quern-tests")
        broker = Broker(own)
        try:
            await stores.jobs.insert_job(job.model_copy(update={"logs": {"stdout": key}}))
            packagers = (package(job.id, stores, storage=storage, broker=broker) for _ in range(times))
            waits = list(await asyncio.gather(*packagers))
            archived = [e for e in await stores.events.events_after(None, job_id=job.id) if e.type == "archive"]
            return waits, await stores.jobs.get_job(job.id), len(archived)
        finally:
            await asyncio.to_thread(broker.close)
            await stores.close()

    return asyncio.run(main())


def test_two_packagers_of_one_job_at_once_build_its_archive_once(
    versioned: tuple[Settings, ObjectStorage], s3: Any
) -> None:
    own, storage = versioned
    with capture_logs() as logs:
        waits, job, archive_events = run_packagers(own, storage, ended(5), times=2)
    assert job.archive is not None and job.packaging_lease is None
    assert puts(s3, own.s3_bucket, job.archive.key) == 1
    assert archive_events == 1
    # The one that found the job held waits for the lease to lapse (it finds the archive then).
    assert sorted(waits, key=lambda wait: wait is not None) == [None, pytest.approx(120, abs=5)]
    assert [entry["event"] for entry in logs].count("packaging_held") == 1


def test_a_packaging_left_by_a_dead_packager_is_taken_once_its_lease_lapsed(
    versioned: tuple[Settings, ObjectStorage], s3: Any
) -> None:
    own, storage = versioned
    dead = ended(5, packaging_lease=utcnow() - timedelta(seconds=1))
    waits, job, archive_events = run_packagers(own, storage, dead, times=1)
    assert waits == [None] and job.archive is not None and job.packaging_lease is None
    assert puts(s3, own.s3_bucket, job.archive.key) == 1 and archive_events == 1


def test_a_packaging_held_by_a_live_packager_is_left_to_it(versioned: tuple[Settings, ObjectStorage], s3: Any) -> None:
    own, storage = versioned
    busy = ended(5, packaging_lease=utcnow() + timedelta(seconds=30))
    waits, job, archive_events = run_packagers(own, storage, busy, times=1)
    assert waits == [pytest.approx(30, abs=5)]
    assert job.archive is None and archive_events == 0
    listing = s3.list_object_versions(Bucket=own.s3_bucket, Prefix=f"jobs/{job.id}/")
    assert [version["Key"] for version in listing.get("Versions", [])] == [f"jobs/{job.id}/logs/stdout.txt"]


def test_a_long_build_keeps_renewing_its_lease(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[datetime, datetime, Job]:
        job = ended(5)
        await stores.jobs.insert_job(job)
        lease = await PackagingLease.take(stores.archives, job)
        assert lease is not None
        taken = lease.until
        await lease.hold_while(asyncio.sleep(0.5), every=0.1)  # a build that outlasts a few renewals
        return taken, lease.until, await stores.jobs.get_job(job.id)

    taken, renewed, stored = in_store(settings, scenario)
    assert renewed > taken and stored.packaging_lease == renewed


def test_a_failed_build_gives_its_lease_up_for_the_next_try(settings: Settings) -> None:
    async def fail() -> None:
        raise Unavailable("S3 went away")

    async def scenario(stores: Stores) -> PackagingLease | None:
        job = ended(5)
        await stores.jobs.insert_job(job)
        lease = await PackagingLease.take(stores.archives, job)
        assert lease is not None
        with pytest.raises(Unavailable):
            await lease.hold_while(fail())
        return await PackagingLease.take(stores.archives, job)

    assert in_store(settings, scenario) is not None
