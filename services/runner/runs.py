"""One run of a job, from claim to recorded outcome.

The claim is a compare-and-set (QUEUED -> RUNNING) in Mongo, so a redelivered or duplicated
``run_job`` message finds the job taken and does nothing, except re-dispatch packaging if a
finished job still lacks its archive (that message may have been the one that was lost).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

import structlog

from services.runner.announcements import ProgressAnnouncer
from services.runner.backoff import Backoff, retry_on_outage
from services.runner.drivers import Driver
from services.runner.follow import follow_app
from services.runner.processes import Exit, build_argv, run_app
from services.runner.sandbox import Sandbox
from services.runner.specs import AppVersions
from services.runner.transfers import stage_inputs, upload_logs, upload_outputs
from shared.apps import AppSpec
from shared.broker import Broker
from shared.errors import AppError, Invalid, NotFound, Unavailable
from shared.models import Job, JobError, JobState, OutputFile, StateChange, state_event, utcnow
from shared.settings import RunnerSettings
from shared.storage import ObjectStorage
from shared.store.apps import AppStore
from shared.store.datasets import DatasetStore
from shared.store.dispatch import DispatchStore
from shared.store.events import EventStore
from shared.store.files import FileStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.webhooks import WebhookStore
from shared.tasks import PACKAGE_RESULTS

log = structlog.get_logger()
# Recording an outcome rides out about ten minutes of Mongo outage before giving up.
FINISH_BACKOFF_SECONDS = (1, 2, 4, 8, 15, 30, 60, 60, 60, 60, 60, 60, 60, 60, 60)


CANCEL_POLL_SECONDS = 1.0


class ActiveRuns:
    """The jobs this worker is running, each with an event that asks its app to stop, and why."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._stops: dict[str, asyncio.Event] = {}
        self._reasons: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._watching: asyncio.Task[None] | None = None
        self.closed = False

    def admit(self) -> None:
        """Refuse new runs once shutting down; the message is retried, so another worker takes the job."""
        if self.closed:
            raise Unavailable("this worker is shutting down; the job goes back to the queue")

    def start(self, job_id: str, jobs: JobStore) -> asyncio.Event:
        """Register a run (and make sure cancel requests are watched for); returns its stop event."""
        self._stops[job_id] = event = asyncio.Event()
        self._idle.clear()
        if self._watching is None or self._watching.done():
            self._watching = asyncio.create_task(self._watch(jobs))
        return event

    def end(self, job_id: str) -> None:
        """Forget a run once its outcome is recorded."""
        self._stops.pop(job_id, None)
        self._reasons.pop(job_id, None)
        if not self._stops:
            self._idle.set()

    def stop(self, job_id: str, reason: str) -> None:
        """Ask one run's app to stop; the first reason given is the one recorded."""
        if job_id in self._stops:
            self._reasons.setdefault(job_id, reason)
            self._stops[job_id].set()

    def reason(self, job_id: str) -> str | None:
        """Why the run was asked to stop (``canceled`` or ``shutdown``), if it was."""
        return self._reasons.get(job_id)

    async def stop_all(self) -> None:
        """Admit no new run, ask every running app to stop, and wait until each has recorded its outcome."""
        self.closed = True
        for job_id in list(self._stops):
            self.stop(job_id, "shutdown")
        await self._idle.wait()

    async def _watch(self, jobs: JobStore) -> None:
        """While runs are active, look for cancel requests once a second (one query for all of them).

        A job that is no longer RUNNING on this worker (recovered while Mongo could not reach us, or
        forced to another state) is stopped too: someone else owns it now.
        """
        while self._stops:
            try:
                for job_id in await jobs.cancel_requests(list(self._stops), worker=self.worker):
                    log.info("job_cancel_requested", job_id=job_id)
                    self.stop(job_id, "canceled")
            except AppError as exc:
                log.warning("cancel_poll_failed", detail=exc.detail)
            await asyncio.sleep(CANCEL_POLL_SECONDS)


def outcome_of(
    ended: Exit, timeout: int, stderr_tail: str, stop_reason: str | None = None
) -> tuple[JobState, JobError | None]:
    """The job's state and error from how its process ended (and why it was stopped, if it was)."""
    if ended.stopped and stop_reason == "canceled":
        return JobState.CANCELED, JobError(reason="canceled on request while it ran", stderr_tail=stderr_tail)
    if ended.stopped:
        return JobState.FAILED, JobError(reason="the worker shut down while the job ran", stderr_tail=stderr_tail)
    if ended.over_disk_mb is not None:
        reason = f"used more than {ended.over_disk_mb} MB of disk in its directory"
        return JobState.FAILED, JobError(reason=reason, stderr_tail=stderr_tail)
    if ended.timed_out:
        return JobState.TIMED_OUT, JobError(reason=f"killed after the {timeout} s time limit", stderr_tail=stderr_tail)
    if ended.code == 0:
        return JobState.SUCCEEDED, None
    code = ended.code if ended.code is not None else -1
    reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return JobState.FAILED, JobError(reason=reason, stderr_tail=stderr_tail)


async def finish(job: Job, worker: str, *, jobs: JobStore, **outcome: object) -> Job | None:
    """Record the outcome, riding out a Mongo outage rather than leaving the job RUNNING."""
    for pause in FINISH_BACKOFF_SECONDS:
        try:
            return await jobs.finish_job(job.id, worker=worker, **outcome)  # type: ignore[arg-type]
        except Unavailable as exc:
            log.warning("job_finish_retrying", job_id=job.id, detail=exc.detail, retry_in=pause)
            await asyncio.sleep(pause)
    return await jobs.finish_job(job.id, worker=worker, **outcome)  # type: ignore[arg-type]


async def execute_job(
    job_id: str,
    *,
    jobs: JobStore,
    events: EventStore,
    queues: QueueStore,
    dispatch: DispatchStore,
    webhooks: WebhookStore,
    apps: AppStore,
    files: FileStore,
    datasets: DatasetStore,
    storage: ObjectStorage,
    broker: Broker,
    specs: AppVersions,
    settings: RunnerSettings,
    active: ActiveRuns,
    drivers: Mapping[str, Driver],
) -> None:
    """Claim the job, run its app in a sandbox, upload outputs and logs, record the end, ask for packaging."""
    worker = settings.runner_id
    active.admit()
    if await _hand_back_if_paused(job_id, jobs=jobs, queues=queues, dispatch=dispatch):
        return
    job = await jobs.claim_job(job_id, worker=worker)
    if job is None:
        try:
            current = await jobs.get_job(job_id)
        except NotFound:
            # Deleted before it ran (DELETE cancels a queued job and removes it): nothing to do, nothing failed.
            log.info("job_gone", job_id=job_id)
            return
        log.info("job_claim_skipped", job_id=job_id, state=current.state.value, worker=current.worker)
        if current.state.terminal and current.archive is None:
            await asyncio.to_thread(broker.send, PACKAGE_RESULTS, job_id)
        return

    log.info("job_started", job_id=job.id, app=job.app, app_version=job.app_version, worker=worker)
    await events.record_events([state_event(job)])
    sandbox = Sandbox(settings.work_dir, job.id)
    announcer = await ProgressAnnouncer.for_run(
        job, webhooks=webhooks, broker=broker, every=settings.webhook_progress_seconds
    )
    stop = active.start(job.id, jobs)
    state = JobState.FAILED
    try:
        state, exit_code, error, outputs = await _run(
            job,
            sandbox,
            stop,
            jobs=jobs,
            events=events,
            apps=apps,
            files=files,
            datasets=datasets,
            storage=storage,
            specs=specs,
            settings=settings,
            active=active,
            drivers=drivers,
            announcer=announcer,
        )
        if await _run_again(job, state, exit_code, jobs=jobs, events=events):
            return
        logs = await _upload_logs(storage, job, sandbox, backoff=Backoff.of(settings), stop=stop)
        finished = await finish(
            job, worker, jobs=jobs, state=state, exit_code=exit_code, error=error, outputs=outputs, logs=logs
        )
    finally:
        active.end(job.id)
        if state is JobState.SUCCEEDED or not settings.keep_failed_dirs:
            await asyncio.to_thread(sandbox.remove)
    if finished is None:
        # An admin forced the job to another state while it ran. A forced end stands, but its
        # logs are still kept and packaged, or its archive would be awaited forever.
        log.warning("job_finish_lost", job_id=job.id, state=state.value)
        if await jobs.keep_logs_of_ended(job.id, worker=worker, logs=logs) is not None:
            await asyncio.to_thread(broker.send, PACKAGE_RESULTS, job.id)
        return
    await events.record_events([state_event(finished)])
    log.info(
        "job_finished",
        job_id=job.id,
        state=state.value,
        exit_code=exit_code,
        elapsed_seconds=finished.elapsed_seconds,
        outputs=len(outputs),
    )
    await asyncio.to_thread(broker.send, PACKAGE_RESULTS, job.id)


async def _run_again(job: Job, state: JobState, exit_code: int | None, *, jobs: JobStore, events: EventStore) -> bool:
    """Put the job back to QUEUED for its next attempt if it asked for that on this exit code."""
    policy = job.retry
    if state is not JobState.FAILED or policy is None or exit_code not in policy.exit_codes:
        return False
    if job.attempt >= policy.attempts:
        return False  # the last attempt's failure is final
    reason = f"exit code {exit_code} asks for another run; attempt {job.attempt + 1} of {policy.attempts}"
    change = StateChange.model_validate(
        {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "runner", "reason": reason}
    )
    requeued = await jobs.requeue_job(job, change, attempt=job.attempt + 1)
    if requeued is None:
        return False  # forced or recovered meanwhile: record the outcome as usual
    await events.record_events([state_event(requeued)])
    log.info("job_retrying", job_id=job.id, exit_code=exit_code, attempt=requeued.attempt)
    return True


async def _hand_back_if_paused(job_id: str, *, jobs: JobStore, queues: QueueStore, dispatch: DispatchStore) -> bool:
    """A job whose queue was paused after it was dispatched goes back to the dispatcher rather than start."""
    try:
        job = await jobs.get_job(job_id)
    except NotFound:
        return False  # the claim below finds it gone and says so
    if job.state is not JobState.QUEUED or not await queues.queue_paused(owner=job.owner, name=job.queue):
        return False
    await dispatch.undispatch(job_id)
    log.info("job_handed_back", job_id=job_id, queue=job.queue, reason="queue paused")
    return True


async def _run(
    job: Job,
    sandbox: Sandbox,
    stop: asyncio.Event,
    *,
    jobs: JobStore,
    events: EventStore,
    apps: AppStore,
    files: FileStore,
    datasets: DatasetStore,
    storage: ObjectStorage,
    specs: AppVersions,
    settings: RunnerSettings,
    active: ActiveRuns,
    drivers: Mapping[str, Driver],
    announcer: ProgressAnnouncer | None = None,
) -> tuple[JobState, int | None, JobError | None, list[OutputFile]]:
    """Stage, run and collect; every failure becomes an outcome, never an exception.

    Staging and uploading ride out an outage of S3 or Mongo (``INFRA_RETRIES``); a stop while
    they wait ends the job as its reason says (canceled, or the worker shutting down).
    """
    backoff = Backoff.of(settings)

    async def prepare() -> tuple[AppSpec, dict[str, Path]]:
        spec = await specs.get(job.app, job.app_version, apps=apps)
        return spec, await stage_inputs(job, sandbox, files=files, datasets=datasets, storage=storage)

    async def upload(produced: list[tuple[str, Path]]) -> list[OutputFile]:
        return await asyncio.to_thread(upload_outputs, storage, job, sandbox, produced)

    step = "prepare the run"
    try:
        await asyncio.to_thread(sandbox.create)
        step = "stage the inputs"
        spec, inputs = await retry_on_outage(
            prepare, backoff=backoff, stop=stop, event="job_stage_retrying", job_id=job.id
        )
        step = "start the app"
        driver = drivers.get(spec.driver)
        if driver is None:
            offers = settings.runner_drivers
            raise Invalid(f"this runner does not offer the {spec.driver} driver (RUNNER_DRIVERS={offers})")
        if driver.owner is not None:
            await asyncio.to_thread(sandbox.hand_over, *driver.owner)
        argv = build_argv(spec, job.params, inputs, python=sys.executable, app_dir=settings.apps_dir / spec.name)
        ended = await follow_app(
            run_app(
                argv,
                sandbox=sandbox,
                spec=spec,
                timeout=job.timeout_seconds,
                stop=stop,
                driver=driver,
                max_disk_mb=settings.max_job_disk_mb,
            ),
            job=job,
            files={"stdout": sandbox.stdout, "stderr": sandbox.stderr},
            jobs=jobs,
            events=events,
            progress_file=sandbox.progress_file,
            on_progress=announcer,
        )
        if announcer is not None:
            await announcer.close()
        tail = await asyncio.to_thread(sandbox.stderr_tail)
        state, error = outcome_of(ended, job.timeout_seconds, tail, active.reason(job.id))
        step = "collect the outputs"
        produced = await asyncio.to_thread(sandbox.collect, spec.outputs, max_bytes=settings.max_output_bytes)
        step = "upload the outputs"
        outputs = await retry_on_outage(
            lambda: upload(produced), backoff=backoff, stop=stop, event="job_upload_retrying", job_id=job.id
        )
        return state, ended.code, error, outputs
    except AppError as exc:
        if stop.is_set():
            # Stopped while quern waited on a server: the stop decides the outcome, as it would have mid-run.
            state, error = outcome_of(Exit(code=None, stopped=True), job.timeout_seconds, "", active.reason(job.id))
            return state, None, error, []
        return JobState.FAILED, None, JobError(reason=f"quern could not {step}: {exc.detail}"), []
    except Exception as exc:
        # A bug of ours, or the disk, must still end the job rather than leave it RUNNING.
        log.exception("job_crashed", job_id=job.id)
        return JobState.FAILED, None, JobError(reason=f"quern failed internally ({type(exc).__name__})"), []


async def _upload_logs(
    storage: ObjectStorage, job: Job, sandbox: Sandbox, *, backoff: Backoff, stop: asyncio.Event
) -> dict[str, str]:
    """Upload the logs, riding out an outage; a job still ends without them (with a warning) if S3 stays away."""

    async def upload() -> dict[str, str]:
        return await asyncio.to_thread(upload_logs, storage, job, sandbox)

    try:
        return await retry_on_outage(upload, backoff=backoff, stop=stop, event="job_upload_retrying", job_id=job.id)
    except Exception as exc:
        log.warning("job_logs_lost", job_id=job.id, error=repr(exc))
        return {}
