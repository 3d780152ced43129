"""One run of a job, from claim to recorded outcome (or hand-back).

A ``run_job`` message is taken only with a free slot (``slots``). The job is read once: that read
gives the run all it needs, and its queue, which goes back to the dispatcher if it was paused
after the dispatch (``pauses``: no read per job, a pause is seen within a second). The claim is
one compare-and-set on that read (QUEUED -> RUNNING, with a new run token and a lease) and the
message is acknowledged right after it: the run goes on in the background, so no delivery is held
for a job's whole run. A job whose dispatch was taken back is not claimed (its message is stale),
and a job deleted meanwhile is left alone. A redelivered or duplicated message finds the job
taken and does nothing, except re-dispatch packaging if a finished job still lacks its archive
(that message may have been the one lost).

Everything a run writes to S3 lies under its own run prefix, and its end is recorded only while
the job is still RUNNING on that run (worker and token), by one update not read back. A small run's
archive is written here and attached by that same update (``archives.py``); other runs are packaged
by the results service. The end's events go in one insert, with the RUNNING event when the run is
over within moments of its claim (``start_events.py``).
Whether the end has a receiver is known without a read of its own: the take's read asks the
webhooks too, and the finish tells whether one was registered since (``JobStore.finish_job``).
A stale run (recovered meanwhile) has its finish refused and its uploads, archive included, deleted.
A runner shutting down hands its runs back to the queue (a preemption, not an attempt); one that
lost its leases gives its runs up to the reaper.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.runner.announcements import ProgressAnnouncer, announce_end
from services.runner.archives import archived_here, build_run_archive
from services.runner.backoff import Backoff, retry_on_outage
from services.runner.checkpoints import restore_checkpoint, save_checkpoint
from services.runner.drivers import Driver
from services.runner.follow import follow_app
from services.runner.metrics import RUN_SECONDS, RUNS, TRANSFER_ERRORS
from services.runner.outcomes import Doing, Outcome, outcome_of
from services.runner.pauses import PausedQueues
from services.runner.processes import Exit, build_argv, run_app
from services.runner.sandbox import Sandbox
from services.runner.slots import LEASE_LOST, SHUTDOWN, Slots
from services.runner.specs import AppVersions
from services.runner.start_events import StartEvent
from services.runner.tasks import run_task
from services.runner.transfers import stage_inputs, upload_logs, upload_outputs
from shared.apps import AppSpec
from shared.broker import Broker
from shared.errors import AppError, Invalid, NotFound, Unavailable
from shared.models import (
    Archive,
    Job,
    JobError,
    JobState,
    OutputFile,
    StateChange,
    job_event,
    run_prefix,
    state_event,
    utcnow,
)
from shared.settings import RunnerSettings
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.store.jobs import JobStore
from shared.tasks import PACKAGE_RESULTS

log = structlog.get_logger()
# Recording an outcome rides out about ten minutes of Mongo outage before giving up (the lease then lapses).
FINISH_BACKOFF_SECONDS = (1, 2, 4, 8, 15, 30, 60, 60, 60, 60, 60, 60, 60, 60, 60)


@dataclass(frozen=True)
class RunnerKit:
    """What a runner's runs work with: its clients, settings, drivers, slots and view of the paused queues."""

    stores: Stores
    storage: ObjectStorage
    broker: Broker
    specs: AppVersions
    settings: RunnerSettings
    slots: Slots
    drivers: Mapping[str, Driver]
    paused: PausedQueues


async def take_job(job_id: str, *, kit: RunnerKit) -> None:
    """Take a slot, claim the job and start its run in the background; the message is done once this returns.

    With no free slot (or the runner draining), or its queue paused, the job goes back to the
    dispatcher rather than wait here.
    """
    jobs, dispatch, slots = kit.stores.jobs, kit.stores.dispatch, kit.slots
    if not await slots.reserve():
        await dispatch.undispatch(job_id)
        log.info("job_handed_back", job_id=job_id, reason="no free slot")
        return
    try:
        read = await jobs.get_job_to_run(job_id)
        if await _hand_back_if_paused(read, kit=kit):
            await slots.release()
            return
        job = await jobs.claim_job(read, worker=slots.worker)
    except NotFound:
        await slots.release()
        # Deleted before it ran (DELETE cancels a queued job and removes it): nothing to do, nothing failed.
        log.info("job_gone", job_id=job_id)
        return
    except BaseException:
        await slots.release()
        raise
    if job is None:
        await slots.release()
        await _claim_skipped(read, kit=kit)
        return
    log.info("job_started", job_id=job.id, app=job.app, app_version=job.app_version, worker=slots.worker)
    slots.launch(job.id, _run_claimed(job, kit=kit))


async def _claim_skipped(read: Job, *, kit: RunnerKit) -> None:
    """Say why a job was not claimed, and re-send packaging if it ended without an archive.

    A job read as claimable lost a race to another move since: it is read again to know which.
    """
    current = read
    if read.state is JobState.QUEUED and read.dispatch_lease is not None:
        try:
            current = await kit.stores.jobs.get_job(read.id)
        except NotFound:
            log.info("job_gone", job_id=read.id)
            return
    log.info("job_claim_skipped", job_id=read.id, state=current.state.value, worker=current.worker)
    if current.state.terminal and current.archive is None:
        await asyncio.to_thread(kit.broker.send, PACKAGE_RESULTS, read.id)


async def _hand_back_if_paused(job: Job, *, kit: RunnerKit) -> bool:
    """A job whose queue was paused after it was dispatched goes back to the dispatcher rather than start."""
    if job.state is not JobState.QUEUED or job.dispatch_lease is None:
        return False  # not claimable: the claim says so
    if not await kit.paused.paused(job.owner, job.queue, queues=kit.stores.queues):
        return False
    await kit.stores.dispatch.undispatch(job.id)
    log.info("job_handed_back", job_id=job.id, queue=job.queue, reason="queue paused")
    return True


async def _run_claimed(job: Job, *, kit: RunnerKit) -> None:
    """Run a claimed job in its sandbox, then record its end, hand it back, or give it up."""
    settings, slots, stores = kit.settings, kit.slots, kit.stores
    start = StartEvent(job, events=stores.events, within=settings.runner_start_event_seconds)
    sandbox = Sandbox(settings.work_dir, job.id)
    stop = slots.stop_event(job.id)
    outcome = Outcome(JobState.FAILED)
    claimed = time.monotonic()
    try:
        announcer = ProgressAnnouncer.for_run(
            job, webhooks=stores.webhooks, broker=kit.broker, every=settings.webhook_progress_seconds
        )
        outcome = await _run(
            job,
            sandbox,
            stop,
            stores=stores,
            storage=kit.storage,
            specs=kit.specs,
            settings=settings,
            reason=lambda: slots.reason(job.id),
            drivers=kit.drivers,
            announcer=announcer,
        )
        if outcome.handed_back == SHUTDOWN:
            await _preempt(job, sandbox, start, kit=kit)
        elif outcome.handed_back == LEASE_LOST:
            log.warning("job_given_up", job_id=job.id, reason="its lease could not be renewed")
            await _discard(job, kit=kit)
        elif not await _run_again(job, outcome, start, kit=kit):
            await _record_end(job, sandbox, outcome, start, kit=kit)
    finally:
        RUNS.labels(job.app, outcome.handed_back or outcome.state.value).inc()
        RUN_SECONDS.labels(job.app).observe(time.monotonic() - claimed)
        await start.close()  # a run that wrote no event of its own still says it ran
        if outcome.state is JobState.SUCCEEDED or not settings.keep_failed_dirs:
            await asyncio.to_thread(sandbox.remove)


async def _record_end(job: Job, sandbox: Sandbox, outcome: Outcome, start: StartEvent, *, kit: RunnerKit) -> None:
    """Upload the logs, archive a small run, record the end on this run; a stale run's uploads are deleted.

    A run archived here has its archive attached by the end's own update, and its end announced to
    its webhooks (if any); any other run is packaged by the results service. The end's events go in
    one insert, with the RUNNING event if it is not written yet (``start_events.py``).
    """
    stores, stop = kit.stores, kit.slots.stop_event(job.id)
    logs = await _upload_logs(kit.storage, job, sandbox, backoff=Backoff.of(kit.settings), stop=stop)
    ended = job.model_copy(
        update={
            "state": outcome.state,
            "finished": utcnow(),
            "exit_code": outcome.exit_code,
            "error": outcome.error,
            "outputs": outcome.outputs,
            "logs": logs,
            "output_logs": outcome.output_logs,
        }
    )
    archive = await _archive(ended, sandbox, kit=kit)
    finished = await finish(
        ended if archive is None else ended.model_copy(update={"archive": archive}), jobs=stores.jobs
    )
    if finished is None and archive is not None:
        finished = await _attached_meanwhile(job, archive, jobs=stores.jobs)
    if finished is None:
        # Forced to an end while it ran: the forced end stands, and the logs are still kept and packaged (by
        # results, over this run's archive, whose manifest told another end), or its archive would be awaited for
        # ever. Recovered meanwhile: this run is stale, its uploads (its archive too) go.
        if await stores.jobs.keep_logs_of_ended(job.id, worker=job.worker or "", run_token=job.run_token, logs=logs):
            log.warning("job_finish_lost", job_id=job.id, state=outcome.state.value)
            await asyncio.to_thread(kit.broker.send, PACKAGE_RESULTS, job.id)
        else:
            log.warning("job_run_stale", job_id=job.id, run_token=job.run_token, state=outcome.state.value)
            await _discard(job, kit=kit)
        return
    events = [*start.take(), state_event(finished)]
    if archive is not None:
        events.append(job_event(finished, "archive", {"size": archive.size, "sha256": archive.sha256}))
    await stores.events.record_events(events)
    log.info(
        "job_finished",
        job_id=job.id,
        state=outcome.state.value,
        exit_code=outcome.exit_code,
        elapsed_seconds=finished.elapsed_seconds,
        outputs=len(outcome.outputs),
        archived=archive is not None,
    )
    if archive is None:
        await asyncio.to_thread(kit.broker.send, PACKAGE_RESULTS, job.id)
    else:
        await announce_end(finished, broker=kit.broker, backoff=Backoff.of(kit.settings))
    if job.checkpoint is not None:
        await asyncio.to_thread(kit.storage.delete, job.checkpoint)  # the run it served is over


async def _attached_meanwhile(job: Job, archive: Archive, *, jobs: JobStore) -> Job | None:
    """The job as this run's end left it, if a finish whose answer was lost (an outage) attached ``archive``."""
    try:
        current = await jobs.get_job(job.id)
    except NotFound:
        return None
    attached = current.archive
    if current.run_token != job.run_token or attached is None or attached.sha256 != archive.sha256:
        return None  # another run's, or results packaged a forced end over this run's archive
    # Whether a webhook was seen at the take is not stored: announce, and let results find the receivers.
    return current.model_copy(update={"receivers_added": True})


async def _archive(ended: Job, sandbox: Sandbox, *, kit: RunnerKit) -> Archive | None:
    """The archive of a small run, written here; None leaves it to the results service (a big run, or a failure)."""
    try:
        if not await asyncio.to_thread(archived_here, ended, sandbox, settings=kit.settings):
            return None
        return await asyncio.to_thread(build_run_archive, kit.storage, ended, sandbox)
    except (AppError, OSError) as exc:
        log.warning("run_archive_left_to_results", job_id=ended.id, error=repr(exc))
        return None


async def finish(ended: Job, *, jobs: JobStore) -> Job | None:
    """Record ``ended``, the claimed job with its end, riding out a Mongo outage rather than leaving it RUNNING."""
    for pause in FINISH_BACKOFF_SECONDS:
        try:
            return await jobs.finish_job(ended)
        except Unavailable as exc:
            log.warning("job_finish_retrying", job_id=ended.id, detail=exc.detail, retry_in=pause)
            await asyncio.sleep(pause)
    return await jobs.finish_job(ended)


async def _preempt(job: Job, sandbox: Sandbox, start: StartEvent, *, kit: RunnerKit) -> None:
    """Hand the job back to the queue: its checkpoint kept, the attempt not counted, its dependents untouched."""
    stores = kit.stores
    checkpoint = None
    try:
        checkpoint = await asyncio.to_thread(
            save_checkpoint, kit.storage, job, sandbox, max_bytes=kit.settings.max_output_bytes
        )
    except (AppError, OSError) as exc:
        log.warning("checkpoint_lost", job_id=job.id, error=repr(exc))
    change = StateChange.model_validate(
        {
            "at": utcnow(),
            "from": JobState.RUNNING,
            "to": JobState.QUEUED,
            "by": "runner",
            "reason": "preempted by shutdown",
        }
    )
    preempted = await stores.jobs.preempt_job(job, change, checkpoint=checkpoint or job.checkpoint)
    await _discard(job, kit=kit)
    if preempted is None:
        # Canceled (a cancel wins over a shutdown) or moved meanwhile: record the stop as any other end.
        current = await stores.jobs.get_job(job.id)
        if current.state is JobState.RUNNING and current.run_token == job.run_token:
            error = JobError(reason="canceled on request while it ran", stderr_tail="")
            canceled = Outcome(JobState.CANCELED, error=error)
            await _record_end(job, sandbox, canceled, start, kit=kit)
        return
    await stores.events.record_events([*start.take(), state_event(preempted)])
    log.info("job_preempted", job_id=job.id, checkpoint=preempted.checkpoint, preemptions=preempted.preemptions)


async def _discard(job: Job, *, kit: RunnerKit) -> None:
    """Delete what this run uploaded: it is not (or no longer) the job's run."""
    try:
        await asyncio.to_thread(kit.storage.delete_prefix, run_prefix(job.id, job.run_token))
    except AppError as exc:
        log.warning("run_uploads_left", job_id=job.id, run_token=job.run_token, detail=exc.detail)


async def _run_again(job: Job, outcome: Outcome, start: StartEvent, *, kit: RunnerKit) -> bool:
    """Put the job back to QUEUED for its next attempt if it asked for that on this exit code."""
    policy = job.retry
    if outcome.state is not JobState.FAILED or policy is None or outcome.exit_code not in policy.exit_codes:
        return False
    if job.attempt >= policy.attempts:
        return False  # the last attempt's failure is final
    reason = f"exit code {outcome.exit_code} asks for another run; attempt {job.attempt + 1} of {policy.attempts}"
    change = StateChange.model_validate(
        {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "runner", "reason": reason}
    )
    requeued = await kit.stores.jobs.requeue_job(job, change, attempt=job.attempt + 1)
    if requeued is None:
        return False  # forced or recovered meanwhile: record the outcome as usual
    await kit.stores.events.record_events([*start.take(), state_event(requeued)])
    await _discard(job, kit=kit)
    log.info("job_retrying", job_id=job.id, exit_code=outcome.exit_code, attempt=requeued.attempt)
    return True


async def _run(
    job: Job,
    sandbox: Sandbox,
    stop: asyncio.Event,
    *,
    stores: Stores,
    storage: ObjectStorage,
    specs: AppVersions,
    settings: RunnerSettings,
    reason: Callable[[], str | None],
    drivers: Mapping[str, Driver],
    announcer: ProgressAnnouncer | None = None,
) -> Outcome:
    """Stage, run and collect; every failure becomes an outcome, never an exception.

    Staging and uploading ride out an outage of S3 or Mongo (``INFRA_RETRIES``); a stop while
    they wait ends the run as its reason says (canceled, handed back on shutdown, given up).
    """
    backoff = Backoff.of(settings)

    async def prepare() -> tuple[AppSpec, dict[str, Path]]:
        spec = await specs.get(job.app, job.app_version, apps=stores.apps)
        with counted_failures("inputs"):
            staged = await stage_inputs(job, sandbox, files=stores.files, datasets=stores.datasets, storage=storage)
        if job.checkpoint is not None:
            await asyncio.to_thread(restore_checkpoint, storage, job, sandbox, max_bytes=settings.max_output_bytes)
        return spec, staged

    async def upload(produced: list[tuple[str, Path]]) -> list[OutputFile]:
        if not produced:
            return []  # nothing to send: no hop to a thread
        with counted_failures("outputs"):
            return await asyncio.to_thread(upload_outputs, storage, job, sandbox, produced)

    doing = Doing("prepare the run")
    try:
        await asyncio.to_thread(sandbox.create)
        if job.task is not None:
            try:
                return await run_task(
                    job,
                    sandbox,
                    stop,
                    doing=doing,
                    stores=stores,
                    storage=storage,
                    settings=settings,
                    reason=reason,
                    drivers=drivers,
                    announcer=announcer,
                )
            finally:
                if announcer is not None:
                    await announcer.close()
        doing.what = "stage the inputs"
        spec, inputs = await retry_on_outage(
            prepare, backoff=backoff, stop=stop, event="job_stage_retrying", job_id=job.id
        )
        doing.what = "start the app"
        driver = drivers.get(spec.driver)
        if driver is None:
            offers = settings.runner_drivers
            raise Invalid(f"this runner does not offer the {spec.driver} driver (RUNNER_DRIVERS={offers})")
        if driver.owner is not None:
            await asyncio.to_thread(sandbox.hand_over, *driver.owner)
        argv = build_argv(spec, job.params, inputs, python=sys.executable, app_dir=settings.apps_dir / spec.name)
        app = run_app(
            argv,
            sandbox=sandbox,
            spec=spec,
            timeout=job.timeout_seconds,
            stop=stop,
            driver=driver,
            grace=settings.app_grace_seconds,
            max_disk_mb=settings.max_job_disk_mb,
            # Back in the queue only with a change in its history: without one, this is its first claim.
            fresh=not job.history,
        )
        ended = await follow_app(
            app,
            job=job,
            files={"stdout": sandbox.stdout, "stderr": sandbox.stderr},
            jobs=stores.jobs,
            events=stores.events,
            progress_file=sandbox.progress_file,
            on_progress=announcer,
        )
        if announcer is not None:
            await announcer.close()
        # A clean exit's outcome holds no stderr tail: it is read for the others only.
        tail = "" if ended == Exit(code=0) else await asyncio.to_thread(sandbox.stderr_tail)
        outcome = outcome_of(ended, job.timeout_seconds, tail, reason())
        if outcome.handed_back is not None:
            return outcome
        doing.what = "collect the outputs"
        produced = await asyncio.to_thread(
            sandbox.collect, spec.outputs, max_bytes=settings.max_output_bytes, max_files=settings.max_output_files
        )
        doing.what = "upload the outputs"
        outputs = await retry_on_outage(
            lambda: upload(produced), backoff=backoff, stop=stop, event="job_upload_retrying", job_id=job.id
        )
        return Outcome(outcome.state, outcome.exit_code, outcome.error, outputs)
    except AppError as exc:
        if stop.is_set():
            # Stopped while quern waited on a server: the stop decides the outcome, as it would have mid-run.
            return outcome_of(Exit(code=None, stopped=True), job.timeout_seconds, "", reason())
        return Outcome(JobState.FAILED, error=JobError(reason=f"quern could not {doing.what}: {exc.detail}"))
    except Exception as exc:
        # A bug of ours, or the disk, must still end the job rather than leave it RUNNING.
        log.exception("job_crashed", job_id=job.id)
        return Outcome(JobState.FAILED, error=JobError(reason=f"quern failed internally ({type(exc).__name__})"))


@contextmanager
def counted_failures(kind: str) -> Iterator[None]:
    """Count a failed staging or upload attempt of ``kind`` (inputs, outputs, logs) in the runner's metrics."""
    try:
        yield
    except (AppError, OSError):
        TRANSFER_ERRORS.labels(kind).inc()
        raise


async def _upload_logs(
    storage: ObjectStorage, job: Job, sandbox: Sandbox, *, backoff: Backoff, stop: asyncio.Event
) -> dict[str, str]:
    """Upload the logs, riding out an outage; a job still ends without them (with a warning) if S3 stays away."""

    async def upload() -> dict[str, str]:
        with counted_failures("logs"):
            return await asyncio.to_thread(upload_logs, storage, job, sandbox)

    try:
        return await retry_on_outage(upload, backoff=backoff, stop=stop, event="job_upload_retrying", job_id=job.id)
    except Exception as exc:
        log.warning("job_logs_lost", job_id=job.id, error=repr(exc))
        return {}
