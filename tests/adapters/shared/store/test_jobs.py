"""The job store against the test Mongo: records read back whole, and every move of a job a compare-and-set."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from shared.errors import Conflict, NotFound
from shared.models import (
    Archive,
    DatasetInput,
    Job,
    JobError,
    JobProgress,
    JobState,
    OutputFile,
    StateChange,
    Webhook,
    new_id,
    utcnow,
)
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import ended, forced, in_store, make_dataset, make_job

SUCCEEDED: dict[str, Any] = {"state": JobState.SUCCEEDED, "exit_code": 0, "error": None, "outputs": [], "logs": {}}


def test_a_dataset_is_in_use_only_while_a_job_reading_it_is_unfinished(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[bool]:
        dataset = make_dataset()
        job = make_job(inputs={"control": DatasetInput(dataset=dataset.id, path="a.txt"), "other": "f1"})
        seen = [await stores.jobs.dataset_in_use(dataset.id)]
        await stores.jobs.insert_job(job)
        seen.append(await stores.jobs.dataset_in_use(dataset.id))
        claimed = await stores.jobs.claim_job(job, worker="w")
        assert claimed is not None
        seen.append(await stores.jobs.dataset_in_use(dataset.id))
        await stores.jobs.finish_job(claimed.model_copy(update=SUCCEEDED))
        seen.append(await stores.jobs.dataset_in_use(dataset.id))
        return seen

    assert in_store(settings, scenario) == [False, True, True, False]


def test_only_one_of_many_concurrent_claims_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[Job | None]:
        job = make_job()
        await stores.jobs.insert_job(job)
        return await asyncio.gather(*(stores.jobs.claim_job(job, worker=f"w{i}") for i in range(8)))

    claims = in_store(settings, scenario)
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1
    assert winners[0].state is JobState.RUNNING and winners[0].started is not None


def test_a_job_is_finished_only_by_the_worker_and_run_that_hold_it(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None]:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="holder")
        assert claimed is not None and claimed.run_token is not None
        return (
            await stores.jobs.finish_job(claimed.model_copy(update={"worker": "intruder", **SUCCEEDED})),
            await stores.jobs.finish_job(claimed.model_copy(update={"run_token": "an-earlier-run", **SUCCEEDED})),
            await stores.jobs.finish_job(claimed.model_copy(update=SUCCEEDED)),
        )

    intruder, stale, holder = in_store(settings, scenario)
    assert intruder is None and stale is None
    assert holder is not None and holder.state is JobState.SUCCEEDED and holder.finished is not None


def test_a_finish_returns_the_job_as_stored_but_for_what_changed_while_it_ran(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="w")
        assert claimed is not None
        progress = JobProgress(percent=50, step="half way", at=utcnow())
        await stores.jobs.set_progress(job.id, progress, run_token=claimed.run_token)
        assert await stores.jobs.request_cancel(job.id, owner=None) is not None
        end = {
            "state": JobState.CANCELED,
            "exit_code": None,
            "error": JobError(reason="canceled on request while it ran", stderr_tail="bye"),
            "outputs": [OutputFile(path="out/a.txt", size=1, sha256="0" * 64, content_type="text/plain", key="k")],
            "logs": {"stdout": "logs/stdout"},
            "archive": Archive(key="runner", size=1, sha256="x", created=utcnow()),
        }
        finished = await stores.jobs.finish_job(claimed.model_copy(update=end))
        return finished, await stores.jobs.get_job(job.id)

    finished, stored = in_store(settings, scenario)
    assert finished is not None and finished.progress is None and finished.cancel_requested is None
    assert stored.progress is not None and stored.cancel_requested is not None  # not read back: as claimed
    lagging = {"lease": stored.lease, "progress": stored.progress, "cancel_requested": stored.cancel_requested}
    assert finished.model_copy(update=lagging) == stored


def webhook_of(owner: str) -> Webhook:
    return Webhook(id=new_id(), owner=owner, url="https://example.com/hook", progress=False, created=utcnow())


def test_a_job_read_to_run_says_whether_its_owner_has_registered_a_webhook(settings: Settings) -> None:
    async def scenario(stores: Stores) -> list[tuple[Job, Job]]:
        with_hook, without = make_job(owner="hooked"), make_job(owner="plain")
        for job in (with_hook, without):
            await stores.jobs.insert_job(job)
        for _ in range(2):  # two of them: still one job read
            await stores.webhooks.insert_webhook(webhook_of("hooked"))
        return [
            (await stores.jobs.get_job_to_run(job.id), await stores.jobs.get_job(job.id))
            for job in (with_hook, without)
        ]

    (hooked, hooked_stored), (plain, plain_stored) = in_store(settings, scenario)
    assert hooked.receivers_added and not hooked_stored.receivers_added
    assert hooked == hooked_stored.model_copy(update={"receivers_added": True})
    assert not plain.receivers_added and plain == plain_stored


def test_a_job_to_run_that_is_gone_is_not_found(settings: Settings) -> None:
    async def scenario(stores: Stores) -> None:
        with pytest.raises(NotFound):
            await stores.jobs.get_job_to_run(new_id())

    in_store(settings, scenario)


def test_a_registered_webhook_marks_only_its_owners_queued_and_running_jobs(settings: Settings) -> None:
    async def scenario(stores: Stores) -> dict[str, bool]:
        queued, running, done, others = make_job(), make_job(), ended(5), make_job(owner="someone-else")
        for job in (queued, running, done, others):
            await stores.jobs.insert_job(job)
        assert await stores.jobs.claim_job(running, worker="w") is not None
        await stores.jobs.mark_receivers_added(queued.owner)
        stored = {
            name: await stores.jobs.get_job(job.id)
            for name, job in [("queued", queued), ("running", running), ("done", done), ("others", others)]
        }
        return {name: job.receivers_added for name, job in stored.items()}

    assert in_store(settings, scenario) == {"queued": True, "running": True, "done": False, "others": False}


def test_a_finish_says_whether_a_webhook_was_registered_since_the_take(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None, list[Job]]:
        jobs = [make_job(owner=owner) for owner in ("quiet", "late", "stale")]
        claimed: list[Job] = []
        for job in jobs:
            await stores.jobs.insert_job(job)
            taken = await stores.jobs.claim_job(await stores.jobs.get_job_to_run(job.id), worker="w")
            assert taken is not None and not taken.receivers_added
            claimed.append(taken)
        await stores.webhooks.insert_webhook(webhook_of("late"))
        await stores.jobs.mark_receivers_added("late")
        quiet, late, _ = claimed
        stale = claimed[2].model_copy(update={"run_token": "an-earlier-run"})
        finished = [await stores.jobs.finish_job(job.model_copy(update=SUCCEEDED)) for job in (quiet, late, stale)]
        return finished[0], finished[1], finished[2], [await stores.jobs.get_job(job.id) for job in jobs]

    quiet, late, stale, stored = in_store(settings, scenario)
    assert quiet is not None and not quiet.receivers_added
    assert late is not None and late.receivers_added
    assert stale is None
    assert [job.state for job in stored] == [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.RUNNING]


def test_a_claim_returns_the_job_as_stored_but_for_the_lease_the_database_stamped(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job, Any]:
        job = make_job()
        await stores.jobs.insert_job(job)
        before = await stores.database.server_time()
        return (
            await stores.jobs.claim_job(await stores.jobs.get_job(job.id), worker="w"),
            await stores.jobs.get_job(job.id),
            before,
        )

    claimed, stored, before = in_store(settings, scenario)
    assert claimed is not None and claimed.lease is None  # not read back: the runner never reads it
    assert stored.lease is not None and stored.lease >= before
    assert claimed.model_copy(update={"lease": stored.lease}) == stored
    assert (stored.state, stored.worker, stored.run_token) == (JobState.RUNNING, "w", claimed.run_token)


def test_a_job_whose_dispatch_was_taken_back_is_not_claimed_on_a_read_before_or_after(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        before = await stores.jobs.get_job(job.id)
        assert await stores.dispatch.undispatch(job.id)
        after = await stores.jobs.get_job(job.id)
        return await stores.jobs.claim_job(before, worker="w"), await stores.jobs.claim_job(after, worker="w"), after

    stale, taken_back, stored = in_store(settings, scenario)
    assert stale is None and taken_back is None
    assert (stored.state, stored.worker, stored.run_token) == (JobState.QUEUED, None, None)


def test_a_claim_on_a_read_older_than_the_jobs_latest_dispatch_is_refused(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None]:
        job = make_job()
        await stores.jobs.insert_job(job)
        first = await stores.jobs.get_job(job.id)
        await stores.dispatch.undispatch(job.id)
        assert await stores.dispatch.lease_dispatches([job.id], until=utcnow() + timedelta(minutes=1)) == [job.id]
        return await stores.jobs.claim_job(first, worker="w"), await stores.jobs.claim_job(
            await stores.jobs.get_job(job.id), worker="w"
        )

    stale, current = in_store(settings, scenario)
    assert stale is None
    assert current is not None and current.state is JobState.RUNNING


def test_a_job_read_when_no_longer_queued_is_not_claimed(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="first")
        assert claimed is not None
        again = await stores.jobs.claim_job(await stores.jobs.get_job(job.id), worker="second")
        return again, await stores.jobs.get_job(job.id)

    again, stored = in_store(settings, scenario)
    assert again is None and stored.worker == "first"


def test_of_concurrent_forced_changes_from_one_state_only_one_wins(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[list[Job | None], Job]:
        job = make_job()
        await stores.jobs.insert_job(job)
        targets = [JobState.FAILED, JobState.CANCELED, JobState.SUCCEEDED, JobState.RUNNING]
        results = await asyncio.gather(*(stores.jobs.force_state(job, forced(job, to, f"to {to}")) for to in targets))
        return results, await stores.jobs.get_job(job.id)

    results, stored = in_store(settings, scenario)
    winners = [result for result in results if result is not None]
    assert len(winners) == 1 and stored == winners[0]
    assert len(stored.history) == 1 and stored.history[0].to is stored.state
    assert stored.history[0].from_ is JobState.QUEUED


def test_a_forced_end_of_a_running_job_stamps_finished_and_asks_its_runner_to_stop(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = make_job()
        await stores.jobs.insert_job(job)
        running = await stores.jobs.claim_job(job, worker="w")
        assert running is not None
        return await stores.jobs.force_state(running, forced(running, JobState.FAILED, "stuck"))

    stopped = in_store(settings, scenario)
    assert stopped is not None and stopped.state is JobState.FAILED
    assert stopped.finished is not None and stopped.cancel_requested is not None


def test_a_job_reads_back_as_it_was_written(settings: Settings) -> None:
    job = make_job(params={"nested": {"a": [1, 2.5, "x"]}}, name="n", tags=["a", "b"], priority=9, rerun_of=new_id())
    job = job.model_copy(update={"history": [forced(job, JobState.FAILED, "why")]})

    async def scenario(stores: Stores) -> Job:
        await stores.jobs.insert_job(job)
        return await stores.jobs.get_job(job.id)

    assert in_store(settings, scenario) == job


def test_duplicate_id_is_a_conflict_and_unknown_id_not_found(settings: Settings) -> None:
    async def scenario(stores: Stores) -> None:
        job = make_job()
        await stores.jobs.insert_job(job)
        with pytest.raises(Conflict):
            await stores.jobs.insert_job(job)
        with pytest.raises(NotFound):
            await stores.jobs.get_job(new_id())

    in_store(settings, scenario)


def test_a_requeued_job_forgets_its_expiry(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = ended(5, expires=utcnow(), expired=utcnow(), state=JobState.FAILED)
        await stores.jobs.insert_job(job)
        change = StateChange.model_validate(
            {"at": utcnow(), "from": JobState.FAILED, "to": JobState.QUEUED, "by": "admin", "reason": "again"}
        )
        return await stores.jobs.requeue_job(job, change)

    requeued = in_store(settings, scenario)
    assert requeued is not None and requeued.expires is None and requeued.expired is None


def test_leases_are_renewed_only_for_the_runs_a_worker_holds_and_by_the_database_clock(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[int, Job, Job, Any]:
        mine, theirs = make_job(), make_job()
        for job in (mine, theirs):
            await stores.jobs.insert_job(job)
        await stores.jobs.claim_job(mine, worker="me")
        await stores.jobs.claim_job(theirs, worker="them")
        await asyncio.sleep(0.05)
        before = await stores.database.server_time()
        renewed = await stores.jobs.renew_leases([mine.id, theirs.id, "gone"], worker="me")
        return renewed, await stores.jobs.get_job(mine.id), await stores.jobs.get_job(theirs.id), before

    renewed, mine, theirs, before = in_store(settings, scenario)
    assert renewed == 1
    assert mine.lease is not None and mine.lease >= before
    assert theirs.lease is not None and theirs.lease < before


def test_a_preempted_run_goes_back_to_the_queue_without_counting_an_attempt(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[Job | None, Job | None, Job | None]:
        job = make_job(depends_on=["d1"], waiting_on=[])
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="w")
        assert claimed is not None
        change = StateChange.model_validate(
            {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "runner", "reason": "preempted"}
        )
        stale = await stores.jobs.preempt_job(claimed.model_copy(update={"run_token": "old"}), change, checkpoint=None)
        preempted = await stores.jobs.preempt_job(claimed, change, checkpoint="jobs/x/checkpoint.tar.gz")
        again = await stores.jobs.preempt_job(claimed, change, checkpoint=None)
        return stale, preempted, again

    stale, preempted, again = in_store(settings, scenario)
    assert stale is None and again is None
    assert preempted is not None and preempted.state is JobState.QUEUED
    assert (preempted.attempt, preempted.preemptions, preempted.waiting_on) == (1, 1, [])
    assert (preempted.worker, preempted.run_token, preempted.lease, preempted.dispatched) == (None, None, None, None)
    assert preempted.checkpoint == "jobs/x/checkpoint.tar.gz" and preempted.history[-1].reason == "preempted"


def test_a_run_asked_to_cancel_is_not_preempted(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job | None:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="w")
        assert claimed is not None
        await stores.jobs.request_cancel(job.id, owner=None)
        change = StateChange.model_validate(
            {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "runner", "reason": "preempted"}
        )
        return await stores.jobs.preempt_job(claimed, change, checkpoint=None)

    assert in_store(settings, scenario) is None


def test_progress_from_a_stale_run_is_not_recorded(settings: Settings) -> None:
    async def scenario(stores: Stores) -> Job:
        job = make_job()
        await stores.jobs.insert_job(job)
        claimed = await stores.jobs.claim_job(job, worker="w")
        assert claimed is not None
        stale = JobProgress(percent=99, step="stale", at=utcnow())
        await stores.jobs.set_progress(job.id, stale, run_token="an-earlier-run")
        current = JobProgress(percent=10, step="current", at=utcnow())
        await stores.jobs.set_progress(job.id, current, run_token=claimed.run_token)
        return await stores.jobs.get_job(job.id)

    progress = in_store(settings, scenario).progress
    assert progress is not None and (progress.percent, progress.step) == (10, "current")
