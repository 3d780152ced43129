"""A GA4GH TES task's run: its inputs staged, its executors run in order, its outputs delivered.

A TES task needs the docker driver (``RUNNER_DRIVERS`` must include ``docker``). Each executor
is a ``DOCKER_COMMAND run`` of its image (checked against ``TES_IMAGES`` again here), named
``quern-<job>-<index>`` and labelled ``quern.job=<job>``, so the driver's clean-up removes
every container of the job, before and after each executor and on a runner's next attempt. Its
``command`` is the container's whole argv: ``command[0]`` becomes the entrypoint, as a
Kubernetes ``command`` replaces an image's, so an image's own entrypoint never prefixes it.
Containers confine as the driver's do (no capabilities, no new privileges, no network unless
``TES_NETWORK_IMAGES`` says, the app user, open-file and process limits), except that their root
is writable: TES images expect to write to ``/tmp`` and elsewhere. ``cpu_cores`` becomes
``--cpus``, ``ram_gb`` ``--memory``, and ``disk_gb`` (at most ``MAX_JOB_DISK_MB``) the disk limit
of the job's directory; the task's time limit spans all its executors.

What the executors print is appended to the job's logs, streamed and uploaded as any job's; each
executor's part is also written to its ``stdout``/``stderr`` path if it names one, and its end
(10 KiB) is kept in its ``ExecutorLog``, recorded as it starts and as it ends. A non-zero exit
fails the task (with that exit code) unless the executor says ``ignore_error``. Outputs are
delivered only once every executor has run (as Funnel does); an output that is missing fails
the task without an exit code (TES's SYSTEM_ERROR).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping

import structlog

from services.runner.announcements import ProgressAnnouncer
from services.runner.backoff import Backoff, retry_on_outage
from services.runner.containers import DockerDriver
from services.runner.drivers import Driver
from services.runner.executors import captured, disk_limit, executor_command
from services.runner.follow import Follower, follow_app
from services.runner.outcomes import Doing, Outcome, outcome_of
from services.runner.processes import Exit, run_process
from services.runner.sandbox import TAIL_BYTES, Sandbox
from services.runner.task_buckets import TaskBuckets
from services.runner.task_files import Sources, deliver_outputs, stage_task_inputs
from services.runner.task_tree import Mount, open_in, prepare
from shared.errors import AppError, Invalid
from shared.models import Job, JobError, JobState, utcnow
from shared.models.tasks import ExecutorLog
from shared.settings import RunnerSettings
from shared.storage import ObjectStorage
from shared.store import Stores

log = structlog.get_logger()


async def run_task(
    job: Job,
    sandbox: Sandbox,
    stop: asyncio.Event,
    *,
    doing: Doing,
    stores: Stores,
    storage: ObjectStorage,
    settings: RunnerSettings,
    reason: Callable[[], str | None],
    drivers: Mapping[str, Driver],
    announcer: ProgressAnnouncer | None = None,
) -> Outcome:
    """Stage the task's inputs, run its executors, deliver its outputs; quern's own failures raise ``AppError``."""
    task = job.task
    assert task is not None
    docker = drivers.get("docker")
    if not isinstance(docker, DockerDriver):
        offers = settings.runner_drivers
        raise Invalid(
            f"TES tasks run in containers: this runner does not offer the docker driver (RUNNER_DRIVERS={offers})"
        )
    policy = settings.task_policy()
    for executor in task.executors:
        if not policy.allows_image(executor.image):
            raise Invalid(f"image {executor.image} is not among those TES tasks may run (TES_IMAGES)")
    backoff = Backoff.of(settings)
    buckets = TaskBuckets(settings)
    sources = Sources(
        files=stores.files,
        datasets=stores.datasets,
        storage=storage,
        buckets=buckets,
        networks=settings.allowed_networks(),
        http_max_bytes=settings.tes_http_input_max_mb * 2**20,
    )
    try:
        doing.what = "stage the inputs"
        await asyncio.to_thread(sandbox.task.mkdir)
        await retry_on_outage(
            lambda: stage_task_inputs(job, sandbox, sources=sources),
            backoff=backoff,
            stop=stop,
            event="job_stage_retrying",
            job_id=job.id,
        )
        doing.what = "start the executors"
        mounts = await asyncio.to_thread(prepare, sandbox.task, task, docker.owner)
        if docker.owner is not None:
            await asyncio.to_thread(sandbox.hand_over, *docker.owner)
        ended = await _run_executors(
            job,
            sandbox,
            stop,
            mounts,
            docker=docker,
            stores=stores,
            settings=settings,
            reason=reason,
            announcer=announcer,
        )
        if ended is not None:
            return ended
        doing.what = "deliver the outputs"

        async def deliver() -> Outcome:
            outputs, logs = await asyncio.to_thread(
                deliver_outputs,
                job,
                sandbox,
                sources=sources,
                max_bytes=settings.max_output_bytes,
                max_files=settings.max_output_files,
            )
            return Outcome(JobState.SUCCEEDED, exit_code=0, outputs=outputs, output_logs=logs)

        return await retry_on_outage(deliver, backoff=backoff, stop=stop, event="job_upload_retrying", job_id=job.id)
    finally:
        await asyncio.to_thread(buckets.close)


async def _run_executors(
    job: Job,
    sandbox: Sandbox,
    stop: asyncio.Event,
    mounts: list[Mount],
    *,
    docker: DockerDriver,
    stores: Stores,
    settings: RunnerSettings,
    reason: Callable[[], str | None],
    announcer: ProgressAnnouncer | None,
) -> Outcome | None:
    """Run the executors in order, recording each; the outcome that ends the task early, or None once all ran."""
    task = job.task
    assert task is not None
    deadline = time.monotonic() + job.timeout_seconds
    follower = Follower({"stdout": sandbox.stdout, "stderr": sandbox.stderr})
    policy = settings.task_policy()
    recorded: list[ExecutorLog] = []
    await _record(job, recorded, stores=stores)  # an earlier (preempted) run's logs go
    for index, executor in enumerate(task.executors):
        command = executor_command(
            docker,
            job,
            index,
            executor,
            mounts,
            task_dir=sandbox.task,
            networked=policy.networked(executor.image),
            network_mode=settings.tes_network,
        )
        stdin = None if executor.stdin is None else await asyncio.to_thread(open_in, sandbox.task, executor.stdin)
        starts = (sandbox.stdout.stat().st_size, sandbox.stderr.stat().st_size)
        recorded.append(ExecutorLog(start=utcnow()))
        await _record(job, recorded, stores=stores)
        log.info("executor_started", job_id=job.id, executor=index, image=executor.image)
        try:
            remaining = deadline - time.monotonic()
            ended = Exit(code=None, timed_out=True)
            if remaining > 0:
                await docker.clean_up(job.id)
                process = run_process(
                    command,
                    env={**docker.cli_environment(), "HOME": str(sandbox.root)},
                    sandbox=sandbox,
                    timeout=remaining,
                    stop=stop,
                    clean_up=lambda: docker.clean_up(job.id),
                    grace=settings.app_grace_seconds,
                    max_disk_mb=disk_limit(task, settings),
                    stdin=stdin,
                )
                files = {"stdout": sandbox.stdout, "stderr": sandbox.stderr}
                ended = await follow_app(
                    process, job=job, files=files, jobs=stores.jobs, events=stores.events, follower=follower,
                    on_progress=announcer,
                )  # fmt: skip
        finally:
            if stdin is not None:
                stdin.close()
        out, err = await asyncio.to_thread(captured, sandbox, starts, executor, owner=docker.owner)
        recorded[-1] = recorded[-1].model_copy(
            update={"end": utcnow(), "exit_code": ended.code, "stdout": out, "stderr": err}
        )
        await _record(job, recorded, stores=stores)
        log.info("executor_ended", job_id=job.id, executor=index, exit_code=ended.code)
        outcome = outcome_of(ended, job.timeout_seconds, err[-TAIL_BYTES:], reason())
        if outcome.state is JobState.SUCCEEDED or (executor.ignore_error and outcome.exit_code is not None):
            continue
        if outcome.state is JobState.FAILED and outcome.error is not None:
            said = f"executor {index + 1} of {len(task.executors)} ({executor.image}) {outcome.error.reason}"
            return dataclasses.replace(outcome, error=JobError(reason=said, stderr_tail=err[-TAIL_BYTES:]))
        return outcome
    return None


async def _record(job: Job, recorded: list[ExecutorLog], *, stores: Stores) -> None:
    """Record the executor logs so far; a lost record is logged, never the task's failure."""
    try:
        kept = await stores.jobs.record_executor_logs(
            job.id, recorded, worker=job.worker or "", run_token=job.run_token
        )
    except AppError as exc:
        log.warning("executor_logs_lost", job_id=job.id, detail=exc.detail)
        return
    if not kept:
        log.warning("executor_logs_refused", job_id=job.id, run_token=job.run_token)
