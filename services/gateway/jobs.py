"""Jobs: submit (validated, stored, then dispatched), follow, and fetch the packaged archive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.apps import find_app
from services.gateway.auth import principal
from services.gateway.bodies import parse_model, read_body
from services.gateway.datasets import Name, Tag
from services.gateway.idempotency import check_key, submit_once
from services.gateway.job_filters import job_query
from services.gateway.links import link
from services.gateway.pages import page_request, page_response
from services.gateway.params import flag, link_response
from services.gateway.retention import KEEP_FOREVER, RetentionPolicy, require_not_expired
from services.gateway.selections import include_globs, selection_link
from services.gateway.state import deps
from services.gateway.webhooks import announce_end, check_webhooks
from shared.apps import MAX_RETENTION, AppSpec, validate_request
from shared.broker import Broker
from shared.errors import Conflict, Invalid, NotFound, NotYet, Violation
from shared.models import (
    DEFAULT_QUEUE,
    DatasetInput,
    InputValue,
    Job,
    JobState,
    Queue,
    RetryPolicy,
    WebhookTarget,
    job_event,
    new_id,
    state_event,
    utcnow,
)
from shared.outbound import Network
from shared.storage import ObjectStorage
from shared.store import Stores
from shared.store.apps import AppStore
from shared.store.datasets import DatasetStore
from shared.store.events import EventStore
from shared.store.files import FileStore
from shared.store.jobs import JobStore
from shared.store.queues import QueueStore
from shared.store.webhooks import WebhookStore

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1 * 2**20
_BRANCHES = frozenset({"str", DatasetInput.__name__})
MAX_TAGS = 20
DEFAULT_PRIORITY = 5
MAX_DEPENDENCIES = 100
JobId = Annotated[str, Field(min_length=1, max_length=64)]
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
INPUT_SHAPE = 'must be a file id, {"dataset": ID} or {"dataset": ID, "path": MEMBER}'


class JobRequest(BaseModel):
    """The body of POST /v1/jobs."""

    model_config = ConfigDict(extra="forbid")
    app: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = {}
    inputs: dict[str, InputValue] = Field(default={}, description="input slot -> file id, or {dataset, path?}")
    timeout_seconds: int | None = Field(default=None, ge=1)
    name: Name | None = None
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS)
    priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=9, description="0 (lowest) to 9 (first to start)")
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


def _input_violation(violation: Violation) -> Violation:
    """Point at the input itself, not at the union branch pydantic tried (``[/jobs/N]/inputs/SLOT/str``)."""
    parts = violation.pointer.split("/")
    at = 3 if len(parts) > 3 and parts[1] == "jobs" else 1  # inside a batch, the request is at /jobs/N
    if len(parts) < at + 3 or parts[at] != "inputs" or parts[at + 2] not in _BRANCHES:
        return violation
    if len(parts) == at + 3:
        return Violation("/".join(parts[: at + 2]), INPUT_SHAPE)
    return Violation("/".join(parts[: at + 2] + parts[at + 3 :]), violation.detail)


def parse_job_request(raw: bytes, model: type[M] = JobRequest) -> M:  # type: ignore[assignment]
    """The job request (or another body holding inputs), with every shape error pointed at."""
    try:
        return parse_model(raw, model)
    except Invalid as exc:
        violations = list(dict.fromkeys(_input_violation(v) for v in exc.violations))
        raise Invalid("the job request is malformed", violations) from None


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
    """Every named queue must be the owner's (404); the default queue is created on first use."""
    for name in sorted(names):
        if name == DEFAULT_QUEUE:
            now = utcnow()
            await queues.ensure_queue(Queue(id=new_id(), owner=owner, name=name, created=now, updated=now))
        elif await queues.find_queue(owner=owner, name=name) is None:
            raise NotFound(f"no queue {name!r}; create it first with POST /v1/queues")


async def check_dependencies(job_ids: set[str], *, owner: str, jobs: JobStore) -> None:
    """Every dependency must be one of the owner's jobs (404) that may still succeed (409)."""
    if not job_ids:
        return
    states = await jobs.job_states(sorted(job_ids), owner=owner)
    for job_id in sorted(job_ids):
        state = states.get(job_id)
        if state is None:
            raise NotFound(f"depends_on: no job {job_id}")
        if state.terminal and state is not JobState.SUCCEEDED:
            raise Conflict(f"depends_on: job {job_id} ended {state.value}, so this job could never start")


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
    await check_dependencies(set(job.depends_on), owner=owner, jobs=stores.jobs)
    if job.webhook is not None:
        await check_webhooks([("/webhook", job.webhook)], owner=owner, networks=networks, webhooks=stores.webhooks)
    await stores.jobs.insert_job(job)
    await stores.events.record_events([state_event(job)])
    wake()
    log.info("job_submitted", job_id=job.id, app=job.app, app_version=job.app_version, queue=job.queue)
    return job


def render_job(request: Request, job: Job) -> dict[str, Any]:
    """The public view of a job."""

    def iso(value: Any) -> str | None:
        return None if value is None else str(value.isoformat())

    url = link(request, "job", job_id=job.id)
    return {
        "id": job.id,
        "url": url,
        "owner": job.owner,
        "app": job.app,
        "app_version": job.app_version,
        "params": job.params,
        "inputs": job.inputs_json(),
        "timeout_seconds": job.timeout_seconds,
        "name": job.name,
        "tags": job.tags,
        "priority": job.priority,
        "rerun_of": job.rerun_of,
        "state": job.state.value,
        "exit_code": job.exit_code,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "elapsed_seconds": job.elapsed_seconds,
        "error": None if job.error is None else job.error.model_dump(),
        "cancel_requested": None if job.cancel_requested is None else job.cancel_requested.isoformat(),
        "outputs": [o.model_dump(exclude={"key"}) for o in job.outputs],
        "archive": None if job.archive is None else job.archive.model_dump(mode="json", exclude={"key"}),
        "history": [change.model_dump(mode="json", by_alias=True) for change in job.history],
        "progress": None if job.progress is None else job.progress.model_dump(mode="json"),
        "queue": job.queue,
        "attempt": job.attempt,
        "retry": None if job.retry is None else job.retry.model_dump(),
        "batch": job.batch,
        "depends_on": job.depends_on,
        "waiting_on": job.waiting_on,
        "dispatched": iso(job.dispatched),
        "retention_seconds": job.retention_seconds,
        "expires": iso(job.expiry),
        "expired": iso(job.expired),
        "webhook": None if job.webhook is None else job.webhook.model_dump(),
        "links": {
            "self": url,
            "app": link(request, "app", name=job.app),
            "archive": link(request, "job_archive", job_id=job.id),
            "outputs": link(request, "job_outputs", job_id=job.id),
            "events": link(request, "job_events", job_id=job.id),
            "deliveries": link(request, "job_deliveries", job_id=job.id),
            "logs": {name: link(request, "job_log", job_id=job.id, name=name) for name in sorted(job.logs)},
        },
    }


async def archive_link(
    *, jobs: JobStore, storage: ObjectStorage, job_id: str, owner: str | None, expires_in: int
) -> dict[str, Any]:
    """A presigned download of the job's archive, or Conflict while it is not packaged yet."""
    job = await jobs.get_job(job_id, owner=owner)
    require_not_expired(job)
    if job.archive is None:
        waiting = "is packaged" if job.state.terminal else f"finishes (it is {job.state.value})"
        raise NotYet(f"job {job.id} has no archive yet; ask again once it {waiting}", retry_after=2)
    url, expires_at = await run_in_threadpool(
        storage.presign_get, job.archive.key, expires_in=expires_in, filename=f"{job.id}.tar.gz"
    )
    return {
        "url": url,
        "expires_at": expires_at.isoformat(),
        "size": job.archive.size,
        "sha256": job.archive.sha256,
        "created": job.archive.created.isoformat(),
        "include": None,
    }


async def cancel_job(
    *, jobs: JobStore, events: EventStore, job_id: str, owner: str | None, who: str, broker: Broker | None = None
) -> Job:
    """Cancel: a QUEUED job at once; a RUNNING one is flagged for its runner, which stops the app within seconds.

    A finished job is left as it is: cancelling it is a no-op answered with its state. With ``broker``,
    the end of a job canceled while QUEUED is announced to its webhooks (a job about to be deleted has none).
    """
    job = await jobs.get_job(job_id, owner=owner)
    if job.state is JobState.QUEUED:
        canceled = await jobs.cancel_queued(job_id, owner=owner, reason=f"canceled by {who} before it started")
        if canceled is not None:
            await events.record_events([state_event(canceled)])
            if broker is not None:
                await announce_end(broker, canceled)
            log.info("job_canceled", job_id=job_id, state="QUEUED")
            return canceled
        job = await jobs.get_job(job_id, owner=owner)  # it started meanwhile
    if job.state is JobState.RUNNING:
        flagged = await jobs.request_cancel(job_id, owner=owner)
        if flagged is not None:
            await events.record_events([job_event(flagged, "state", {"state": "RUNNING", "cancel_requested": True})])
            log.info("job_cancel_requested", job_id=job_id)
            return flagged
        job = await jobs.get_job(job_id, owner=owner)  # it finished meanwhile
    return job


async def cancel(request: Request) -> Response:
    """POST /v1/jobs/{job_id}/cancel: the job, CANCELED, being stopped (cancel_requested set), or already finished."""
    who, stores = principal(request), deps(request).stores
    job = await cancel_job(
        jobs=stores.jobs,
        events=stores.events,
        job_id=request.path_params["job_id"],
        owner=who.owner_filter,
        who=who.username,
        broker=deps(request).broker,
    )
    return JSONResponse(render_job(request, job))


async def submit(request: Request) -> Response:
    """POST /v1/jobs."""
    d, owner = deps(request), principal(request).user_id
    job_request: JobRequest = parse_job_request(await read_body(request, MAX_BODY_BYTES))

    async def submit(job_id: str | None = None) -> Job:
        return await submit_job(
            stores=SubmissionStores.of(d.stores),
            request=job_request,
            owner=owner,
            wake=d.dispatcher.wake,
            job_id=job_id,
            retention=RetentionPolicy.of(d.settings),
            networks=d.settings.allowed_networks(),
        )

    key = request.headers.get("idempotency-key")
    if key is None:
        job, replayed = await submit(), False
    else:
        job, replayed = await submit_once(
            idempotency=d.stores.idempotency,
            owner=owner,
            key=check_key(key),
            request=job_request.model_dump(mode="json"),
            submit=submit,
            replay=lambda job_id: d.stores.jobs.get_job(job_id, owner=owner),
        )
    body = render_job(request, job)
    if replayed:
        return JSONResponse(body, headers={"Location": body["url"], "Idempotent-Replayed": "true"})
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


async def describe(request: Request) -> Response:
    """GET /v1/jobs/{job_id}."""
    job = await deps(request).stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_job(request, job))


async def list_jobs(request: Request) -> Response:
    """GET /v1/jobs: the caller's jobs (an admin's: everyone's), filtered, newest first unless ``sort=created``."""
    wanted = page_request(request)
    query = job_query(request)
    page = await deps(request).stores.jobs.list_jobs(
        owner=principal(request).owner_filter,
        limit=wanted.limit,
        after=wanted.after,
        where=query.where,
        oldest_first=query.oldest_first,
    )
    return page_response(request, page, lambda job: render_job(request, job))


async def archive(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/archive[?include=GLOB...][&redirect=1]: the full archive, or one of only some outputs."""
    d = deps(request)
    redirect = flag(request, "redirect")
    include = include_globs(request)
    job_id, owner, expires_in = (
        request.path_params["job_id"],
        principal(request).owner_filter,
        d.settings.presign_expiry_seconds,
    )
    if include:
        link = await selection_link(
            jobs=d.stores.jobs,
            archives=d.stores.archives,
            storage=d.storage,
            broker=d.broker,
            job_id=job_id,
            owner=owner,
            include=include,
            expires_in=expires_in,
        )
    else:
        link = await archive_link(
            jobs=d.stores.jobs, storage=d.storage, job_id=job_id, owner=owner, expires_in=expires_in
        )
    return link_response(link, redirect=redirect)
