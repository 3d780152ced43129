"""Submitting a job: validated against its app; inputs, queue and dependencies checked; then stored for dispatch.

With an ``Idempotency-Key`` (``submit_job_once``), a repeated request answers the job the first one submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.gateway.domain.datasets import Name, Tag
from services.gateway.domain.idempotency import check_key, submit_once
from services.gateway.domain.job_metrics import SUBMITTED
from services.gateway.domain.quotas import Quotas, check_queued_jobs
from services.gateway.domain.registry import find_app
from services.gateway.domain.retention import KEEP_FOREVER, RetentionPolicy
from services.gateway.domain.webhooks import check_webhooks
from shared.apps import MAX_RETENTION, AppSpec, validate_request
from shared.errors import Conflict, Invalid, NotFound, Violation
from shared.models import (
    DEFAULT_QUEUE,
    DatasetInput,
    InputValue,
    Job,
    JobState,
    Queue,
    RetryPolicy,
    WebhookTarget,
    new_id,
    state_event,
    utcnow,
)
from shared.outbound import Network
from shared.store import Stores
from shared.store.apps import AppStore
from shared.store.datasets import DatasetStore
from shared.store.events import EventStore
from shared.store.files import FileStore
from shared.store.idempotency import IdempotencyStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.webhooks import WebhookStore

log = structlog.get_logger()
MAX_TAGS = 20
DEFAULT_PRIORITY = 5
MAX_DEPENDENCIES = 100
JobId = Annotated[str, Field(min_length=1, max_length=64)]
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class JobRequest(BaseModel):
    """The body of POST /v1/jobs."""

    model_config = ConfigDict(extra="forbid")
    app: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = {}
    inputs: dict[str, InputValue] = Field(default={}, description="input slot -> file id, or {dataset, path?}")
    timeout_seconds: int | None = Field(default=None, ge=1)
    name: Name | None = None
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS)
    priority: int = Field(
        default=DEFAULT_PRIORITY, ge=0, le=9, description="0 (lowest) to 9 (first to start of the caller's own jobs)"
    )
    queue: QueueName = Field(default=DEFAULT_QUEUE, description="one of the caller's queues")
    depends_on: list[JobId] = Field(
        default=[], max_length=MAX_DEPENDENCIES, description="jobs that must succeed before this one starts"
    )
    retry: RetryPolicy | None = Field(default=None, description="run again when the app exits with one of these codes")
    retention_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION,
        description="keep its outputs, logs and archive this long after it ends (default: the app's, or the server's)",
    )
    webhook: WebhookTarget | None = Field(
        default=None, description="POST the job's terminal event here (instead of to the owner's registered webhooks)"
    )


async def check_inputs(
    inputs: list[dict[str, InputValue]], *, owner: str, files: FileStore, datasets: DatasetStore
) -> None:
    """Every input file and dataset must exist and be the owner's (404), and a dataset path one of its members (422).

    ``inputs`` holds one input map per job; errors of a batch's job name it by its index.
    """
    file_ids = sorted({v for one in inputs for v in one.values() if isinstance(v, str)})
    dataset_ids = sorted({v.dataset for one in inputs for v in one.values() if isinstance(v, DatasetInput)})
    found_files = await files.get_files(file_ids, owner=owner) if file_ids else {}
    found_datasets = await datasets.get_datasets(dataset_ids, owner=owner) if dataset_ids else {}
    for index, one in enumerate(inputs):
        at, job = ("", "") if len(inputs) == 1 else (f"/jobs/{index}", f"jobs[{index}] ")
        for slot, value in sorted(one.items()):
            if isinstance(value, str):
                if value not in found_files:
                    raise NotFound(f"{job}input {slot!r}: no file {value}")
                continue
            dataset = found_datasets.get(value.dataset)
            if dataset is None:
                raise NotFound(f"{job}input {slot!r}: no dataset {value.dataset}")
            if value.path is not None and value.path not in {member.path for member in dataset.members}:
                detail = f"dataset {dataset.id} has no member {value.path!r}"
                raise Invalid(f"{job}input {slot!r}: {detail}", [Violation(f"{at}/inputs/{slot}/path", detail)])


def build_job(
    spec: AppSpec,
    request: JobRequest,
    *,
    owner: str,
    job_id: str | None = None,
    rerun_of: str | None = None,
    retention: RetentionPolicy = KEEP_FOREVER,
) -> Job:
    """The job ``request`` describes, validated against its app (422 pointing at what is wrong)."""
    params = validate_request(spec, request.params, request.inputs)
    timeout = request.timeout_seconds or spec.timeout.default
    if timeout > spec.timeout.max:
        raise Invalid(
            f"app {spec.name} allows at most {spec.timeout.max} seconds",
            [Violation("/timeout_seconds", f"must be at most {spec.timeout.max}")],
        )
    depends_on = list(dict.fromkeys(request.depends_on))
    return Job(
        id=job_id or new_id(),
        owner=owner,
        app=spec.name,
        app_version=spec.version,
        params=params,
        inputs=request.inputs,
        timeout_seconds=timeout,
        created=utcnow(),
        name=request.name,
        tags=sorted(set(request.tags)),
        priority=request.priority,
        rerun_of=rerun_of,
        queue=request.queue,
        depends_on=depends_on,
        waiting_on=depends_on,
        retry=request.retry,
        retention_seconds=retention.for_job(spec, request.retention_seconds),
        webhook=request.webhook,
    )


async def check_queues(names: set[str], *, owner: str, queues: QueueStore) -> None:
    """Every named queue must be the owner's (404); the default queue is created on first use.

    The default queue cannot be deleted, so each process ensures an owner's only once.
    """
    for name in sorted(names):
        if name == DEFAULT_QUEUE:
            now = utcnow()
            await queues.ensure_queue_exists(Queue(id=new_id(), owner=owner, name=name, created=now, updated=now))
        elif await queues.find_queue(owner=owner, name=name) is None:
            raise NotFound(f"no queue {name!r}; create it first with POST /v1/queues")


async def check_dependencies(job_ids: set[str], *, owner: str, jobs: JobStore) -> set[str]:
    """Every dependency must be one of the owner's jobs (404) that may still succeed (409).

    Returns those that have not succeeded yet: the ones a new job waits on.
    """
    if not job_ids:
        return set()
    states = await jobs.job_states(sorted(job_ids), owner=owner)
    for job_id in sorted(job_ids):
        state = states.get(job_id)
        if state is None:
            raise NotFound(f"depends_on: no job {job_id}")
        if state.terminal and state is not JobState.SUCCEEDED:
            raise Conflict(f"depends_on: job {job_id} ended {state.value}, so this job could never start")
    return {job_id for job_id in job_ids if states[job_id] is not JobState.SUCCEEDED}


def waiting(job: Job, pending: set[str]) -> Job:
    """``job`` waiting only on its dependencies in ``pending``: those that succeeded already are struck now."""
    waiting_on = [job_id for job_id in job.depends_on if job_id in pending]
    return job if waiting_on == job.waiting_on else job.model_copy(update={"waiting_on": waiting_on})


@dataclass(frozen=True)
class SubmissionStores:
    """The stores a submission is checked against (app, inputs, queue, dependencies, webhook) and recorded in."""

    apps: AppStore
    files: FileStore
    datasets: DatasetStore
    queues: QueueStore
    jobs: JobStore
    webhooks: WebhookStore
    events: EventStore

    @classmethod
    def of(cls, stores: Stores) -> SubmissionStores:
        """Those of ``stores``."""
        return cls(
            stores.apps, stores.files, stores.datasets, stores.queues, stores.jobs, stores.webhooks, stores.events
        )


async def submit_job(
    *,
    stores: SubmissionStores,
    request: JobRequest,
    owner: str,
    wake: Callable[[], None],
    quotas: Quotas,
    rerun_of: str | None = None,
    job_id: str | None = None,
    retention: RetentionPolicy = KEEP_FOREVER,
    networks: tuple[Network, ...] = (),
) -> Job:
    """Validate against the app, check inputs, queue and dependencies are the owner's, then store the job.

    The dispatcher (woken by ``wake``) sends it to RabbitMQ once it may start; a stored job is
    accepted even while RabbitMQ is down, and waits for it.
    """
    spec = await find_app(request.app, apps=stores.apps)
    job = build_job(spec, request, owner=owner, job_id=job_id, rerun_of=rerun_of, retention=retention)
    await check_inputs([request.inputs], owner=owner, files=stores.files, datasets=stores.datasets)
    await check_queues({job.queue}, owner=owner, queues=stores.queues)
    job = waiting(job, await check_dependencies(set(job.depends_on), owner=owner, jobs=stores.jobs))
    if job.webhook is not None:
        await check_webhooks([("/webhook", job.webhook)], owner=owner, networks=networks, webhooks=stores.webhooks)
    await check_queued_jobs(1, owner=owner, quotas=quotas, jobs=stores.jobs)
    await stores.jobs.insert_job(job)
    await stores.events.record_events([state_event(job)])
    wake()
    SUBMITTED.labels(job.app).inc()
    log.info("job_submitted", job_id=job.id, app=job.app, app_version=job.app_version, queue=job.queue)
    return job


async def submit_job_once(
    *,
    stores: SubmissionStores,
    idempotency: IdempotencyStore,
    request: JobRequest,
    owner: str,
    key: str | None,
    wake: Callable[[], None],
    quotas: Quotas,
    retention: RetentionPolicy = KEEP_FOREVER,
    networks: tuple[Network, ...] = (),
) -> tuple[Job, bool]:
    """The job submitted now (False), or (True) the one an earlier request with this ``Idempotency-Key`` submitted.

    Without a key every request submits a job; a malformed key is 400, one used with another request 409.
    """

    async def submit(job_id: str | None = None) -> Job:
        return await submit_job(
            stores=stores,
            request=request,
            owner=owner,
            wake=wake,
            quotas=quotas,
            job_id=job_id,
            retention=retention,
            networks=networks,
        )

    if key is None:
        return await submit(), False
    return await submit_once(
        idempotency=idempotency,
        owner=owner,
        key=check_key(key),
        request=request.model_dump(mode="json"),
        submit=submit,
        replay=lambda job_id: stores.jobs.get_job(job_id, owner=owner),
    )
