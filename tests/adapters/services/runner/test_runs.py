"""Taking a ``run_job`` message against the test Mongo and RabbitMQ, up to the claim.

The job goes back to the dispatcher if its queue was paused after the dispatch, is not claimed
once its dispatch was taken back, is left alone once deleted, and has its packaging re-sent if it
ended without an archive. No job here is claimed, so no run starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from services.runner.pauses import PausedQueues
from services.runner.runs import RunnerKit, take_job
from services.runner.slots import Slots
from services.runner.specs import AppVersions
from shared.broker import Broker
from shared.call_counts import tally
from shared.models import Job, JobState, Queue, new_id, utcnow
from shared.settings import RunnerSettings, load
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.tasks import PACKAGE_RESULTS
from shared.worker import Intake
from tests.helpers.records import ended, make_job
from tests.helpers.stacks import delete_queues

Scenario = Callable[[RunnerKit], Awaitable[Any]]


def with_kit(env: dict[str, str], scenario: Scenario, **overrides: Any) -> Any:
    """Run ``scenario`` with a runner's kit of one slot, over a database and a queue namespace of its own."""
    settings = load(RunnerSettings).model_copy(
        update={"mongo_database": f"runs_{new_id()}", "queue_namespace": f"r{new_id()}"} | overrides
    )

    async def main() -> Any:
        stores = Stores.connect(settings, appname="quern-tests")
        storage, broker = ObjectStorage(settings), Broker(settings)
        slots = Slots("w", capacity=1, jobs=stores.jobs, intake=Intake(), lease_seconds=60)
        kit = RunnerKit(
            stores=stores,
            storage=storage,
            broker=broker,
            specs=AppVersions(),
            settings=settings,
            slots=slots,
            drivers={},
            paused=PausedQueues(),
        )
        try:
            return await scenario(kit)
        finally:
            await asyncio.to_thread(broker.close)
            storage.close()
            await stores.close()

    try:
        return asyncio.run(main())
    finally:
        delete_queues(settings.rabbitmq_url.get_secret_value(), settings.queue_namespace)


async def paused_queue(kit: RunnerKit, owner: str, name: str) -> None:
    queue = await kit.stores.queues.ensure_queue(
        Queue(id=new_id(), owner=owner, name=name, created=utcnow(), updated=utcnow())
    )
    await kit.stores.queues.set_queue_paused(queue.id, owner=owner, paused=True)


def test_a_job_whose_queue_was_paused_after_its_dispatch_goes_back_to_the_dispatcher(env: dict[str, str]) -> None:
    async def scenario(kit: RunnerKit) -> tuple[Job, int]:
        job = make_job(queue="held")
        await kit.stores.jobs.insert_job(job)
        await paused_queue(kit, job.owner, "held")
        await take_job(job.id, kit=kit)
        return await kit.stores.jobs.get_job(job.id), kit.slots.used

    with capture_logs() as logs:
        job, used = with_kit(env, scenario)
    assert (job.state, job.dispatched, job.dispatch_lease, job.worker) == (JobState.QUEUED, None, None, None)
    assert used == 0
    assert [entry["reason"] for entry in logs if entry["event"] == "job_handed_back"] == ["queue paused"]


def test_a_job_whose_dispatch_was_taken_back_is_not_claimed(env: dict[str, str]) -> None:
    async def scenario(kit: RunnerKit) -> tuple[Job, int]:
        job = make_job()
        await kit.stores.jobs.insert_job(job)
        await kit.stores.dispatch.undispatch(job.id)
        await take_job(job.id, kit=kit)
        return await kit.stores.jobs.get_job(job.id), kit.slots.used

    with capture_logs() as logs:
        job, used = with_kit(env, scenario)
    assert (job.state, job.worker, job.run_token) == (JobState.QUEUED, None, None)
    assert used == 0
    assert [entry["state"] for entry in logs if entry["event"] == "job_claim_skipped"] == ["QUEUED"]


def test_a_take_reads_the_job_and_its_owners_webhooks_in_one_command(env: dict[str, str], tmp_path: Path) -> None:
    async def scenario(kit: RunnerKit) -> dict[str, int]:
        job = make_job()
        await kit.stores.jobs.insert_job(job)
        await kit.stores.dispatch.undispatch(job.id)  # not claimable: the take stops at its read
        counts = tally(tmp_path)
        before = counts.snapshot().get("mongo", {})
        await take_job(job.id, kit=kit)
        after = counts.snapshot()["mongo"]
        return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name)}

    assert with_kit(env, scenario, quern_count_calls=tmp_path) == {"aggregate:jobs": 1}


def test_a_job_deleted_before_its_message_is_taken_is_left_alone(env: dict[str, str]) -> None:
    async def scenario(kit: RunnerKit) -> int:
        await take_job(new_id(), kit=kit)
        return kit.slots.used

    with capture_logs() as logs:
        used = with_kit(env, scenario)
    assert used == 0
    assert [entry["job_id"] for entry in logs if entry["event"] == "job_gone"] != []


def test_a_redelivered_message_of_a_job_ended_without_its_archive_sends_packaging_again(env: dict[str, str]) -> None:
    async def scenario(kit: RunnerKit) -> int:
        job = ended(5, state=JobState.SUCCEEDED)
        await kit.stores.jobs.insert_job(job)
        await take_job(job.id, kit=kit)
        return await asyncio.to_thread(kit.broker.waiting, PACKAGE_RESULTS)

    with capture_logs() as logs:
        sent = with_kit(env, scenario)
    assert sent == 1
    assert [entry["state"] for entry in logs if entry["event"] == "job_claim_skipped"] == ["SUCCEEDED"]
