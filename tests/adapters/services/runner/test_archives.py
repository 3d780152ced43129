"""A small run is archived by its runner and attached with its end; a big one, or a stale one, is not.

A run ended at once writes its RUNNING event in one insert with its end's; a longer one writes it alone, early.

Each test claims a job of a one-script app in a database, bucket and queue namespace of its own
and runs it through the runner's own slots (``_run_claimed``, as ``take_job`` starts it) against
the test stack's Mongo, S3 and RabbitMQ. Nothing consumes the test's queues, so what the runner
asked of the results service is read from them.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.results.archives import build_archive
from services.runner.drivers import LocalDriver
from services.runner.pauses import PausedQueues
from services.runner.runs import RunnerKit, _run_claimed
from services.runner.slots import Slots
from services.runner.specs import AppVersions
from shared.broker import Broker
from shared.call_counts import tally
from shared.models import Event, Job, JobState, StateChange, Webhook, WebhookTarget, new_id, run_prefix, utcnow
from shared.settings import RunnerSettings, load
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.tasks import ANNOUNCE_END, PACKAGE_RESULTS
from shared.worker import Intake
from tests.helpers.records import make_job, package, script_app
from tests.helpers.stacks import delete_queues

SMALL = "import sys; print('hello'); print('oops', file=sys.stderr); open('out.txt', 'w').write('result\\n')"
BIG = "import os; print('hello'); open('out.txt', 'wb').write(os.urandom(1536 * 1024))"  # 1.5 MiB, incompressible
QUIET = "open('out.txt', 'w').write('result\\n')"  # no log lines: no log events
SLOW = "import time; time.sleep(2); open('out.txt', 'w').write('result\\n')"


@dataclass
class Ran:
    """A job run to its end by the runner: as stored, its events, and what it asked of the results service."""

    job: Job
    events: list[Event]
    packagings: int
    announcements: int
    mongo: dict[str, int]  # the commands the run made, by name and collection
    running_alone: float | None  # seconds from the launch until the RUNNING event was stored without the end's


@pytest.fixture
def own(env: dict[str, str], open_dir: Path, tmp_path: Path, s3: Any) -> Iterator[RunnerSettings]:
    """Runner settings with a database, a versioned bucket (each put of a key is a version) and queues of their own."""
    settings = load(RunnerSettings).model_copy(
        update={
            "mongo_database": f"archives_{new_id()}",
            "queue_namespace": f"arch-{new_id()}",
            "s3_bucket": f"quern-arch-{uuid.uuid4().hex[:12]}",
            "work_dir": open_dir / "work",
            "runner_archive_max_mb": 1,
            "quern_count_calls": tmp_path / "counts",  # outlives the test: counts are written at exit too
        }
    )
    storage = ObjectStorage(settings)
    storage.ensure_bucket()
    s3.put_bucket_versioning(Bucket=settings.s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    storage.close()
    yield settings
    delete_queues(settings.rabbitmq_url.get_secret_value(), settings.queue_namespace)


async def claimed(stores: Stores, settings: RunnerSettings, script: str, **fields: Any) -> Job:
    """A claimed job of a new app running ``script``, whose output is ``out.txt``."""
    registered = script_app(script)
    await stores.apps.insert_app(registered)
    job = make_job(app=registered.name, app_version="1", params={}, inputs={}, timeout_seconds=30, **fields)
    await stores.jobs.insert_job(job)
    taken = await stores.jobs.claim_job(job, worker=settings.runner_id)
    assert taken is not None
    return taken


def run(
    settings: RunnerSettings,
    script: str,
    *,
    stale: bool = False,
    meanwhile: Callable[[Stores, Job], Awaitable[None]] | None = None,
    **fields: Any,
) -> Ran:
    """Claim a job of ``script`` and run it in the runner's slots to its end (made stale first, if asked).

    ``meanwhile`` is done while it runs.
    """

    async def main() -> Ran:
        stores = Stores.connect(settings, appname="quern-tests")
        storage, broker = ObjectStorage(settings), Broker(settings)
        slots = Slots(settings.runner_id, capacity=1, jobs=stores.jobs, intake=Intake(), lease_seconds=300)
        kit = RunnerKit(
            stores, storage, broker, AppVersions(), settings, slots, {"local": LocalDriver()}, PausedQueues()
        )
        try:
            job = await claimed(stores, settings, script, **fields)
            assert not job.receivers_added  # its owner has no webhook at its take
            if stale:
                # Recovered by the reaper as if its runner had died: this run's end must change nothing.
                change = StateChange.model_validate(
                    {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "reaper", "reason": "t"}
                )
                assert await stores.jobs.requeue_job(job, change) is not None
            assert await slots.reserve()
            assert settings.quern_count_calls is not None
            counts = tally(settings.quern_count_calls)
            before = counts.snapshot()["mongo"]
            slots.launch(job.id, _run_claimed(job, kit=kit))
            watching = asyncio.create_task(running_alone(stores, job.id))
            if meanwhile is not None:
                await meanwhile(stores, job)
            await slots.drain(drain_seconds=60)  # waits for the run to end
            alone = await asyncio.wait_for(watching, 10)  # every run writes its RUNNING event
            after = counts.snapshot()["mongo"]
            return Ran(
                job=await stores.jobs.get_job(job.id),
                events=await stores.events.events_after(None, job_id=job.id),
                packagings=await asyncio.to_thread(broker.waiting, PACKAGE_RESULTS),
                announcements=await asyncio.to_thread(broker.waiting, ANNOUNCE_END),
                mongo={name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name)},
                running_alone=alone,
            )
        finally:
            await asyncio.to_thread(broker.close)
            storage.close()
            await stores.close()

    return asyncio.run(main())


async def running_alone(stores: Stores, job_id: str) -> float | None:
    """Seconds until the job's RUNNING event is stored without its end's; None if they come together."""
    began = time.monotonic()
    while True:
        events = await stores.events.events_after(None, job_id=job_id)
        states = [event.data["state"] for event in events if event.type == "state"]
        if JobState.RUNNING.value in states:
            return None if any(JobState(state).terminal for state in states) else time.monotonic() - began
        await asyncio.sleep(0.02)


def read(settings: RunnerSettings, key: str) -> bytes:
    storage = ObjectStorage(settings)
    try:
        body = storage.open(key)
        try:
            return body.read()
        finally:
            body.close()
    finally:
        storage.close()


def versions(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key ever written under ``prefix`` (deleted or not)."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [version["Key"] for version in listing.get("Versions", [])]


def test_a_small_run_is_succeeded_with_its_archive_and_nothing_is_asked_of_the_results_service(
    own: RunnerSettings,
) -> None:
    ran = run(own, SMALL)
    job = ran.job
    assert job.state is JobState.SUCCEEDED and job.archive is not None
    assert job.archive.key == f"{run_prefix(job.id, job.run_token)}archive.tar.gz"
    data = read(own, job.archive.key)
    assert len(data) == job.archive.size
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {member.name: tar.extractfile(member).read() for member in tar.getmembers()}  # type: ignore[union-attr]
    assert set(members) == {
        f"{job.id}/{path}" for path in ("outputs/out.txt", "logs/stderr.txt", "logs/stdout.txt")
    } | {f"{job.id}/manifest.json"}
    assert members[f"{job.id}/outputs/out.txt"] == b"result\n" and members[f"{job.id}/logs/stdout.txt"] == b"hello\n"
    # No packaging asked for, and no announcement either: the job has no webhook, its owner none registered.
    assert ran.packagings == 0 and ran.announcements == 0
    # The end and the archive are recorded together, in that order.
    assert [(event.type, event.data.get("state")) for event in ran.events[-2:]] == [
        ("state", "SUCCEEDED"),
        ("archive", None),
    ]
    assert ran.events[-1].data == {"size": job.archive.size, "sha256": job.archive.sha256}


def test_the_runners_archive_is_byte_for_byte_what_the_results_service_builds(own: RunnerSettings) -> None:
    job = run(own, SMALL).job
    assert job.archive is not None
    storage = ObjectStorage(own)
    try:
        key, size, sha256 = build_archive(storage, job)  # the results service's packaging of the stored job
    finally:
        storage.close()
    assert (key, size, sha256) == (job.archive.key, job.archive.size, job.archive.sha256)


def test_an_archived_end_is_announced_when_the_job_has_a_webhook(own: RunnerSettings) -> None:
    ran = run(own, SMALL, webhook=WebhookTarget(url="https://example.com/hook"))
    assert ran.job.archive is not None
    assert ran.packagings == 0 and ran.announcements == 1


def test_an_archived_end_without_any_receiver_reads_no_webhook_and_is_not_announced(own: RunnerSettings) -> None:
    ran = run(own, SMALL)
    assert ran.job.archive is not None and ran.announcements == 0
    assert not any(name.endswith(":webhooks") for name in ran.mongo)
    assert ran.mongo["update:jobs"] == 1  # the finish, matched at once: no webhook was registered meanwhile


def test_a_webhook_registered_while_the_job_runs_gets_its_archived_end(own: RunnerSettings) -> None:
    async def register(stores: Stores, job: Job) -> None:
        await asyncio.sleep(0.5)  # SLOW runs for 2 s
        webhook = Webhook(
            id=new_id(), owner=job.owner, url="https://example.com/hook", progress=False, created=utcnow()
        )
        await stores.webhooks.insert_webhook(webhook)  # as the gateway registers one: inserted, then marked
        await stores.jobs.mark_receivers_added(job.owner)

    ran = run(own, SLOW, meanwhile=register)
    assert ran.job.state is JobState.SUCCEEDED and ran.job.archive is not None and ran.job.receivers_added
    assert ran.packagings == 0 and ran.announcements == 1


def test_a_run_over_the_threshold_is_packaged_by_the_results_service(own: RunnerSettings, s3: Any) -> None:
    ran = run(own, BIG)
    job = ran.job
    assert job.state is JobState.SUCCEEDED and job.archive is None
    assert versions(s3, own.s3_bucket, f"jobs/{job.id}/") == sorted(
        f"{run_prefix(job.id, job.run_token)}{path}"
        for path in ("logs/stderr.txt", "logs/stdout.txt", "outputs/out.txt")
    )
    assert ran.packagings == 1 and ran.announcements == 0

    async def results() -> Job:
        stores = Stores.connect(own, appname="quern-tests")
        storage, broker = ObjectStorage(own), Broker(own)
        try:
            assert await package(job.id, stores, storage=storage, broker=broker) is None
            return await stores.jobs.get_job(job.id)
        finally:
            await asyncio.to_thread(broker.close)
            storage.close()
            await stores.close()

    packaged = asyncio.run(results())
    assert packaged.archive is not None and packaged.archive.key.endswith("archive.tar.gz")


def test_a_stale_run_attaches_nothing_and_its_archive_goes_with_its_uploads(own: RunnerSettings, s3: Any) -> None:
    ran = run(own, SMALL, stale=True)
    job = ran.job
    assert job.state is JobState.QUEUED and job.archive is None and job.logs == {}
    written = versions(s3, own.s3_bucket, f"jobs/{job.id}/")
    assert any(key.endswith("/archive.tar.gz") for key in written)  # built, as for any small run
    assert s3.list_objects_v2(Bucket=own.s3_bucket, Prefix=f"jobs/{job.id}/").get("Contents", []) == []
    assert ran.packagings == 0 and ran.announcements == 0
    assert "archive" not in [event.type for event in ran.events]


def test_a_run_ended_at_once_writes_its_running_event_in_the_ends_insert(own: RunnerSettings) -> None:
    ran = run(own.model_copy(update={"runner_start_event_seconds": 0.5}), QUIET)
    job = ran.job
    assert [(event.type, event.data.get("state")) for event in ran.events] == [
        ("state", "RUNNING"),
        ("state", "SUCCEEDED"),
        ("archive", None),
    ]
    assert ran.events[0].at == job.started  # its real time, though written with the end
    assert ran.running_alone is None
    # One update (the end, not read back) and one insert of events for the whole run.
    assert (ran.mongo.get("insert:events"), ran.mongo.get("update:jobs")) == (1, 1)


def test_a_run_still_going_has_its_running_event_written_alone_well_within_a_second(own: RunnerSettings) -> None:
    ran = run(own, SLOW)
    job = ran.job
    assert job.state is JobState.SUCCEEDED and job.archive is not None
    assert [(event.type, event.data.get("state")) for event in ran.events] == [
        ("state", "RUNNING"),
        ("state", "SUCCEEDED"),
        ("archive", None),
    ]
    assert ran.events[0].at == job.started
    # Streams send an event once it is a second old: the RUNNING event is there well before.
    assert ran.running_alone is not None and ran.running_alone < 0.75
    assert ran.mongo.get("insert:events") == 2
