from __future__ import annotations

import asyncio
import gc
import warnings
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from shared.apps import AppSpec, RegisteredApp, version_id
from shared.errors import Conflict, NotFound, Unavailable
from shared.models import (
    Archive,
    Dataset,
    DatasetInput,
    DatasetMember,
    Job,
    JobState,
    PendingUpload,
    Selection,
    StateChange,
    job_event,
    new_id,
    utcnow,
)
from shared.mongo import MongoStore
from shared.settings import Settings


def make_job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "id": new_id(),
        "owner": "u1",
        "app": "flood",
        "app_version": "1",
        "params": {"steps": 3},
        "inputs": {"elevation": "f1"},
        "timeout_seconds": 60,
        "created": utcnow(),
        # As if the dispatcher had sent it: claims look for its lease, which stays once sent.
        "dispatched": utcnow(),
        "dispatch_lease": utcnow(),
    }
    return Job(**(fields | overrides))


def in_store(settings: Settings, scenario: Any) -> Any:
    """Run ``scenario`` on a database of its own, so its jobs never reach the test stack's dispatcher."""
    own = settings.model_copy(update={"mongo_database": f"store_{new_id()}"})

    async def main() -> Any:
        store = MongoStore.connect(own, appname="quern-tests")
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def make_dataset(**overrides: Any) -> Dataset:
    now = utcnow()
    fields: dict[str, Any] = {
        "id": new_id(),
        "owner": "u1",
        "name": f"d-{new_id()}",
        "kind": "zip",
        "members": [DatasetMember(path="a.txt", size=1, sha256="0" * 64)],
        "source_file": "f1",
        "created": now,
        "updated": now,
    }
    return Dataset(**(fields | overrides))


def test_a_dataset_name_is_unique_per_owner_even_when_inserts_race(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[BaseException | None]:
        await store.ensure_indexes()
        name = f"same-{new_id()}"
        await store.insert_dataset(make_dataset(name=name, owner="someone-else"))
        racing = [store.insert_dataset(make_dataset(name=name)) for _ in range(4)]
        return await asyncio.gather(*racing, return_exceptions=True)

    outcomes = in_store(settings, scenario)
    assert outcomes.count(None) == 1
    assert all(isinstance(outcome, Conflict) for outcome in outcomes if outcome is not None)


def test_a_dataset_is_in_use_only_while_a_job_reading_it_is_unfinished(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[bool]:
        dataset = make_dataset()
        job = make_job(inputs={"control": DatasetInput(dataset=dataset.id, path="a.txt"), "other": "f1"})
        seen = [await store.dataset_in_use(dataset.id)]
        await store.insert_job(job)
        seen.append(await store.dataset_in_use(dataset.id))
        await store.claim_job(job.id, worker="w")
        seen.append(await store.dataset_in_use(dataset.id))
        await store.finish_job(
            job.id, worker="w", state=JobState.SUCCEEDED, exit_code=0, error=None, outputs=[], logs={}
        )
        seen.append(await store.dataset_in_use(dataset.id))
        return seen

    assert in_store(settings, scenario) == [False, True, True, False]


def make_app(name: str, version: str, **overrides: Any) -> RegisteredApp:
    spec = AppSpec.model_validate(
        {
            "name": name,
            "version": version,
            "description": "test app",
            "command": ["true"],
            "parameters": {"type": "object", "additionalProperties": False, "$defs": {"a.b": {"type": "string"}}},
            "outputs": ["*"],
            "timeout": {"default": 5, "max": 5},
        }
    )
    fields: dict[str, Any] = {
        "id": version_id(name, version),
        "name": name,
        "version": version,
        "spec": spec,
        "source": "api",
        "registered": utcnow(),
        "registered_by": "admin",
    }
    return RegisteredApp(**(fields | overrides))


def test_the_current_app_version_is_the_latest_enabled_one(settings: Settings) -> None:
    name = f"a{new_id()[-12:]}"

    async def scenario(store: MongoStore) -> list[tuple[str, bool] | None]:
        seen: list[RegisteredApp | None] = [await store.current_app(name)]
        await store.insert_app(make_app(name, "1", registered=utcnow() - timedelta(seconds=2)))
        await store.insert_app(make_app(name, "2"))
        seen.append(await store.current_app(name))
        await store.set_app_disabled(name, "2", by="admin")
        seen.append(await store.current_app(name))
        await store.set_app_disabled(name, None, by="admin")
        seen.append(await store.current_app(name))
        await store.set_app_disabled(name, "1", by=None)
        seen.append(await store.current_app(name))
        return [None if app is None else (app.version, app.disabled is not None) for app in seen]

    assert in_store(settings, scenario) == [None, ("2", False), ("1", False), ("2", True), ("1", False)]


def test_an_app_version_is_registered_once_and_read_back_whole(settings: Settings) -> None:
    name = f"a{new_id()[-12:]}"

    async def scenario(store: MongoStore) -> tuple[RegisteredApp, list[str]]:
        await store.insert_app(make_app(name, "1"))
        with pytest.raises(Conflict):
            await store.insert_app(make_app(name, "1", registered_by="someone-else"))
        with pytest.raises(NotFound):
            await store.get_app(name, "9")
        await store.insert_app(make_app(name, "2"))
        return await store.get_app(name, "1"), [app.version for app in await store.app_versions(name)]

    app, versions = in_store(settings, scenario)
    assert app.registered_by == "admin" and "a.b" in app.spec.parameters["$defs"]
    assert versions == ["2", "1"]


def test_only_one_of_many_concurrent_claims_wins(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[Job | None]:
        job = make_job()
        await store.insert_job(job)
        return await asyncio.gather(*(store.claim_job(job.id, worker=f"w{i}") for i in range(8)))

    claims = in_store(settings, scenario)
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1
    assert winners[0].state is JobState.RUNNING and winners[0].started is not None


def test_a_job_is_finished_only_by_the_worker_that_holds_it(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[Job | None, Job | None]:
        job = make_job()
        await store.insert_job(job)
        await store.claim_job(job.id, worker="holder")
        outcome: dict[str, Any] = {
            "state": JobState.SUCCEEDED,
            "exit_code": 0,
            "error": None,
            "outputs": [],
            "logs": {},
        }
        return (
            await store.finish_job(job.id, worker="intruder", **outcome),
            await store.finish_job(job.id, worker="holder", **outcome),
        )

    intruder, holder = in_store(settings, scenario)
    assert intruder is None
    assert holder is not None and holder.state is JobState.SUCCEEDED and holder.finished is not None


def test_archive_is_attached_once(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[Job | None, Job | None, Job]:
        job = make_job()
        await store.insert_job(job)
        first = Archive(key="a", size=1, sha256="x", created=utcnow())
        second = Archive(key="b", size=2, sha256="y", created=utcnow())
        return (
            await store.set_archive(job.id, first, finished=job.finished),
            await store.set_archive(job.id, second, finished=job.finished),
            await store.get_job(job.id),
        )

    first, second, stored = in_store(settings, scenario)
    assert first is not None and second is None
    assert stored.archive is not None and stored.archive.key == "a"


def test_the_archive_of_an_earlier_run_is_not_attached_to_a_retried_job(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> Job | None:
        job = make_job(state=JobState.FAILED, started=utcnow(), finished=utcnow())
        await store.insert_job(job)
        change = forced(job, JobState.QUEUED, "retried")
        assert await store.requeue_job(job, change) is not None
        return await store.set_archive(
            job.id, Archive(key="a", size=1, sha256="x", created=utcnow()), finished=job.finished
        )

    assert in_store(settings, scenario) is None


def forced(job: Job, to: JobState, reason: str) -> StateChange:
    return StateChange.model_validate({"at": utcnow(), "from": job.state, "to": to, "by": "root", "reason": reason})


def test_of_concurrent_forced_changes_from_one_state_only_one_wins(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[list[Job | None], Job]:
        job = make_job()
        await store.insert_job(job)
        targets = [JobState.FAILED, JobState.CANCELED, JobState.SUCCEEDED, JobState.RUNNING]
        results = await asyncio.gather(*(store.force_state(job, forced(job, to, f"to {to}")) for to in targets))
        return results, await store.get_job(job.id)

    results, stored = in_store(settings, scenario)
    winners = [result for result in results if result is not None]
    assert len(winners) == 1 and stored == winners[0]
    assert len(stored.history) == 1 and stored.history[0].to is stored.state
    assert stored.history[0].from_ is JobState.QUEUED


def test_a_forced_end_of_a_running_job_stamps_finished_and_asks_its_runner_to_stop(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> Job | None:
        job = make_job()
        await store.insert_job(job)
        running = await store.claim_job(job.id, worker="w")
        assert running is not None
        return await store.force_state(running, forced(running, JobState.FAILED, "stuck"))

    stopped = in_store(settings, scenario)
    assert stopped is not None and stopped.state is JobState.FAILED
    assert stopped.finished is not None and stopped.cancel_requested is not None


def test_a_job_reads_back_as_it_was_written(settings: Settings) -> None:
    job = make_job(params={"nested": {"a": [1, 2.5, "x"]}}, name="n", tags=["a", "b"], priority=9, rerun_of=new_id())
    job = job.model_copy(update={"history": [forced(job, JobState.FAILED, "why")]})

    async def scenario(store: MongoStore) -> Job:
        await store.insert_job(job)
        return await store.get_job(job.id)

    assert in_store(settings, scenario) == job


def test_duplicate_id_is_a_conflict_and_unknown_id_not_found(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> None:
        job = make_job()
        await store.insert_job(job)
        with pytest.raises(Conflict):
            await store.insert_job(job)
        with pytest.raises(NotFound):
            await store.get_job(new_id())

    in_store(settings, scenario)


def test_unreachable_server_is_unavailable(settings: Settings) -> None:
    dead = settings.model_copy(update={"mongo_url": SecretStr("mongodb://127.0.0.1:9"), "mongo_timeout_seconds": 0.5})

    async def scenario() -> None:
        store = MongoStore.connect(dead, appname="quern-tests")
        try:
            with pytest.raises(Unavailable):
                await store.get_job("x")
        finally:
            await store.close()

    asyncio.run(scenario())
    # PyMongo's async client drops the socket of a refused connection without closing it; collect
    # it here, quietly, rather than let a later test's garbage collection report the ResourceWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_only_one_request_at_a_time_may_complete_an_upload(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[int, bool, bool]:
        now = utcnow()
        upload = PendingUpload(
            id=new_id(),
            owner="u1",
            name="a.bin",
            size=1,
            sha256="0" * 64,
            content_type="application/octet-stream",
            key="uploads/x",
            created=now,
            expires=now + timedelta(hours=1),
        )
        await store.insert_upload(upload)
        claims = await asyncio.gather(
            *(store.claim_upload(upload.id, owner="u1", stale_before=now - timedelta(minutes=5)) for _ in range(6))
        )
        stranger = await store.claim_upload(upload.id, owner="u2", stale_before=now + timedelta(minutes=5))
        # a claim older than stale_before counts as abandoned and may be taken over
        taken_over = await store.claim_upload(upload.id, owner="u1", stale_before=utcnow() + timedelta(seconds=1))
        return sum(claim is not None for claim in claims), stranger is None, taken_over is not None

    assert in_store(settings, scenario) == (1, True, True)


def test_events_come_back_in_order_after_an_id_per_job_and_per_owner(settings: Settings) -> None:
    mine, theirs = make_job(owner="u1"), make_job(owner="u2")

    async def scenario(store: MongoStore) -> Any:
        await store.ensure_indexes()
        events = [job_event(mine, "progress", {"percent": p, "step": ""}) for p in range(5)]
        other = job_event(theirs, "state", {"state": "QUEUED"})
        await store.insert_events([*events, other])
        after = await store.events_after(events[1].id, job_id=mine.id)
        owned = await store.events_after(None, owner="u2")
        return [e.id for e in events], [e.id for e in after], [e.id for e in owned], other.id

    ids, after, owned, other = in_store(settings, scenario)
    assert ids == sorted(ids) and after == ids[2:]
    assert owned == [other]


# Selective archives


def test_of_concurrent_requests_for_one_selection_only_one_enqueues_its_packaging(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[bool]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await store.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        racing = [
            store.request_selection(job, "d1", selection, resend_before=now - timedelta(minutes=15)) for _ in range(4)
        ]
        return list(await asyncio.gather(*racing))

    assert sorted(in_store(settings, scenario)) == [False, False, False, True]


def test_a_selection_asked_for_long_ago_and_never_packaged_is_enqueued_again(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[bool, bool]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await store.insert_job(job)
        old = Selection(include=["*.csv"], requested=utcnow() - timedelta(hours=1))
        await store.request_selection(job, "d1", old, resend_before=utcnow() - timedelta(hours=2))
        now = utcnow()
        fresh = Selection(include=["*.csv"], requested=now)
        return (
            await store.request_selection(job, "d1", fresh, resend_before=now - timedelta(hours=2)),
            await store.request_selection(job, "d1", fresh, resend_before=now - timedelta(minutes=15)),
        )

    assert in_store(settings, scenario) == (False, True)


def test_a_released_selection_may_be_asked_for_again(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[bool, Job]:
        job = make_job(state=JobState.SUCCEEDED, started=utcnow(), finished=utcnow())
        await store.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        await store.request_selection(job, "d1", selection, resend_before=now - timedelta(minutes=15))
        await store.release_selection(job.id, "d1", requested=now)
        stored = await store.get_job(job.id)
        return await store.request_selection(job, "d1", selection, resend_before=now), stored

    again, released = in_store(settings, scenario)
    assert released.selections == {} and again is True


def test_a_selections_archive_is_attached_once_and_cleared_when_the_job_is_retried(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[Job | None, Job | None, Job | None]:
        job = make_job(state=JobState.FAILED, started=utcnow(), finished=utcnow())
        await store.insert_job(job)
        now = utcnow()
        selection = Selection(include=["*.csv"], requested=now)
        await store.request_selection(job, "d1", selection, resend_before=now)
        first = Archive(key="a", size=1, sha256="x", created=utcnow())
        attached = await store.set_selection_archive(job.id, "d1", first, finished=job.finished)
        twice = await store.set_selection_archive(job.id, "d1", first, finished=job.finished)
        return attached, twice, await store.requeue_job(job, forced(job, JobState.QUEUED, "retried"))

    attached, twice, retried = in_store(settings, scenario)
    assert attached is not None and attached.selections["d1"].archive is not None
    assert twice is None
    assert retried is not None and retried.selections == {}


# Retention


def ended(seconds_ago: float, **overrides: Any) -> Job:
    """A job that ran and ended ``seconds_ago``."""
    at = utcnow() - timedelta(seconds=seconds_ago)
    fields: dict[str, Any] = {"state": JobState.SUCCEEDED, "started": at, "finished": at}
    return make_job(**(fields | overrides))


def test_expiry_is_stamped_as_the_end_plus_the_retention(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[Job, Job]:
        job, kept = ended(5, retention_seconds=60), ended(5)
        await store.insert_job(job)
        await store.insert_job(kept)
        await store.stamp_expiry(limit=10)
        return await store.get_job(job.id), await store.get_job(kept.id)

    job, kept = in_store(settings, scenario)
    assert job.finished is not None and job.expires == job.finished + timedelta(seconds=60)
    assert kept.expires is None


def test_an_unpackaged_job_is_not_due_for_expiry_until_its_packaging_is_given_up(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[str]:
        now = utcnow()
        fresh, old = ended(5, expires=now - timedelta(seconds=1)), ended(600, expires=now - timedelta(seconds=1))
        for job in (fresh, old):
            await store.insert_job(job)
        due = await store.due_for_expiry(now=utcnow(), packaged_by=now - timedelta(seconds=60), limit=10)
        return [{fresh.id: "fresh", old.id: "old"}[job_id] for job_id in due]

    assert in_store(settings, scenario) == ["old"]


def test_only_one_of_concurrent_expiry_claims_wins(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> list[Job | None]:
        job = ended(5, expires=utcnow() - timedelta(seconds=1))
        await store.insert_job(job)
        later = utcnow() + timedelta(minutes=10)
        return list(await asyncio.gather(*(store.claim_expiry(job.id, until=later) for _ in range(8))))

    claims = in_store(settings, scenario)
    assert sum(claim is not None for claim in claims) == 1


def test_a_requeued_job_forgets_its_expiry(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> Job | None:
        job = ended(5, expires=utcnow(), expired=utcnow(), state=JobState.FAILED)
        await store.insert_job(job)
        change = StateChange.model_validate(
            {"at": utcnow(), "from": JobState.FAILED, "to": JobState.QUEUED, "by": "admin", "reason": "again"}
        )
        return await store.requeue_job(job, change)

    requeued = in_store(settings, scenario)
    assert requeued is not None and requeued.expires is None and requeued.expired is None


def test_an_expired_job_gets_no_archive(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> Job | None:
        job = ended(5, expired=utcnow())
        await store.insert_job(job)
        archive = Archive(key="k", size=1, sha256="0" * 64, created=utcnow())
        return await store.set_archive(job.id, archive, finished=job.finished)

    assert in_store(settings, scenario) is None


def test_only_one_of_concurrent_packaging_resends_wins(settings: Settings) -> None:
    async def scenario(store: MongoStore) -> tuple[list[str], list[bool]]:
        job = ended(3600)
        await store.insert_job(job)
        before = utcnow() - timedelta(minutes=10)
        lost = await store.unpackaged_jobs(finished_before=before, resent_before=before, limit=10)
        claims = await asyncio.gather(*(store.claim_packaging_resend(job.id, resent_before=before) for _ in range(4)))
        return lost, list(claims)

    lost, claims = in_store(settings, scenario)
    assert len(lost) == 1 and claims.count(True) == 1
