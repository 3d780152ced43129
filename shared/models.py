"""The records the services share through MongoDB: users, keys, files, pending uploads, datasets, jobs and events.

Ids are ULID strings: unique, sortable by creation time, and readable in URLs and logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator
from ulid import ULID


def new_id() -> str:
    """A fresh, time-sortable id."""
    return str(ULID()).lower()


_last_event_id = ""


def new_event_id() -> str:
    """A fresh id greater than every other this process made, so one job's events keep their order."""
    global _last_event_id
    candidate = str(ULID()).lower()
    if candidate <= _last_event_id:
        candidate = str(ULID.from_int(int(ULID.from_str(_last_event_id.upper())) + 1)).lower()
    _last_event_id = candidate
    return candidate


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision BSON keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"

    @property
    def terminal(self) -> bool:
        """True once the job will never change state again."""
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED}


DEFAULT_QUEUE = "default"
MISSED_BEATS = 3  # a worker that missed this many heartbeats is taken for gone


class Role(StrEnum):
    """What a user may do: their own resources (user), or everyone's (admin)."""

    USER = "user"
    ADMIN = "admin"


class Record(BaseModel):
    """A stored document; ``id`` is Mongo's ``_id``."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class User(Record):
    """Someone who may log in; ``password_hash`` is an argon2 hash."""

    id: str
    username: str
    password_hash: str
    role: Role = Role.USER
    created: datetime
    disabled: bool = False
    max_running: int | None = Field(
        default=None, description="jobs running or dispatched at once; None: USER_MAX_RUNNING"
    )


class ApiKey(Record):
    """A credential for services: ``qk_<id>.<secret>``; only the secret's sha256 is kept."""

    id: str
    owner: str
    name: str
    secret_sha256: str
    created: datetime
    revoked: datetime | None = None


class StoredFile(Record):
    """An uploaded input file and the S3 object that holds its bytes."""

    id: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    key: str
    created: datetime


class PendingUpload(Record):
    """A file announced for upload straight to S3 by presigned URL, not yet verified.

    Its id becomes the file's id once the bytes are checked against ``size`` and ``sha256``.
    ``multipart_id`` is S3's UploadId when the file is sent in parts of ``part_size`` bytes;
    ``completing`` is set while one request verifies it, so two cannot race.
    """

    id: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    key: str
    created: datetime
    expires: datetime
    multipart_id: str | None = None
    part_size: int | None = None
    completing: datetime | None = None


class DatasetMember(Record):
    """One file of a dataset, stored at ``datasets/<dataset id>/<path>``."""

    path: str
    size: int
    sha256: str


class Dataset(Record):
    """The checked contents of an uploaded bundle (zip, tar, tar.gz), one S3 object per member."""

    id: str
    owner: str
    name: str
    description: str = ""
    tags: list[str] = []
    kind: str
    members: list[DatasetMember]
    metadata: dict[str, Any] | None = Field(default=None, description="Pacifica metadata.txt, parsed")
    source_file: str
    created: datetime
    updated: datetime

    @property
    def prefix(self) -> str:
        """Where the members are stored in S3."""
        return dataset_prefix(self.id)

    @property
    def size(self) -> int:
        """The members' bytes in all."""
        return sum(member.size for member in self.members)


def dataset_prefix(dataset_id: str) -> str:
    """The S3 prefix of a dataset's members."""
    return f"datasets/{dataset_id}/"


def job_prefix(job_id: str) -> str:
    """The S3 prefix of a job's outputs, logs and archive: everything it owns in S3."""
    return f"jobs/{job_id}/"


class DatasetInput(BaseModel):
    """A job input taken from a dataset: the whole dataset, staged as a directory, or one member of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dataset: str = Field(min_length=1, max_length=64)
    path: str | None = Field(default=None, min_length=1, max_length=1024)


InputValue = str | DatasetInput


class OutputFile(Record):
    """One file a job produced, uploaded to S3."""

    path: str
    size: int
    sha256: str
    content_type: str
    key: str


class Archive(Record):
    """The tar.gz of a job's outputs, logs and manifest."""

    key: str
    size: int
    sha256: str
    created: datetime


class Selection(Record):
    """A selective archive asked for by its globs (``?include=``): packaged on demand, then kept with the job."""

    include: list[str] = Field(description="the globs, sorted and without duplicates")
    requested: datetime = Field(description="when packaging was last asked for")
    archive: Archive | None = None


class JobError(Record):
    """Why a job did not succeed, in a sentence, with the end of what it wrote to stderr."""

    reason: str
    stderr_tail: str = ""


class StateChange(Record):
    """An admin's forced change of a job's state, and why."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    at: datetime
    from_: JobState = Field(alias="from")
    to: JobState
    by: str
    reason: str


class JobProgress(Record):
    """The app's latest progress report."""

    percent: float
    step: str
    at: datetime


EventType = Literal["state", "progress", "log", "archive"]


class Event(Record):
    """Something that happened to a job; ids order a job's events."""

    id: str
    job_id: str
    owner: str
    type: EventType
    at: datetime
    data: dict[str, Any]


class Queue(Record):
    """A user's named queue of jobs (QDO's queues): paused queues start nothing new."""

    id: str
    owner: str
    name: str
    description: str = ""
    paused: bool = False
    created: datetime
    updated: datetime


class RetryPolicy(BaseModel):
    """When an app's own failure is worth another run: these exit codes, up to ``attempts`` runs in all."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    exit_codes: list[int] = Field(min_length=1, max_length=20, description="exit codes (1-255) that mean: try again")
    attempts: int = Field(ge=2, le=10, description="runs in all, the first included")

    @field_validator("exit_codes")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        if any(not 1 <= code <= 255 for code in codes):
            raise ValueError("exit codes are 1 to 255")
        return sorted(set(codes))


class Batch(Record):
    """Jobs submitted in one call; its jobs are not dispatched until it is ``committed`` (all of it stored)."""

    id: str
    owner: str
    size: int
    created: datetime
    committed: bool = False


class Job(Record):
    """One run of an app with validated parameters and staged inputs."""

    id: str
    owner: str
    app: str
    app_version: str
    params: dict[str, Any]
    inputs: dict[str, InputValue] = Field(description="input slot -> file id, or a dataset (and member path)")
    timeout_seconds: int
    state: JobState = JobState.QUEUED
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    worker: str | None = None
    exit_code: int | None = None
    error: JobError | None = None
    cancel_requested: datetime | None = None
    outputs: list[OutputFile] = []
    logs: dict[str, str] = Field(default={}, description="log name (stdout, stderr) -> S3 key")
    archive: Archive | None = None
    selections: dict[str, Selection] = Field(default={}, description="sha256 of the sorted globs -> its archive")
    name: str | None = None
    tags: list[str] = []
    priority: int = 5
    rerun_of: str | None = Field(default=None, description="the job this one re-runs")
    history: list[StateChange] = Field(default=[], description="forced state changes, oldest first")
    progress: JobProgress | None = None
    queue: str = DEFAULT_QUEUE
    attempt: int = Field(default=1, description="which run this is: recovery from a dead worker adds one")
    retry: RetryPolicy | None = None
    depends_on: list[str] = Field(default=[], description="jobs that must succeed before this one starts")
    waiting_on: list[str] = Field(default=[], description="those of depends_on that have not succeeded yet")
    batch: str | None = Field(default=None, description="the batch it was submitted in")
    dispatched: datetime | None = Field(default=None, description="when its message went to RabbitMQ")
    dispatch_lease: datetime | None = Field(default=None, description="a dispatcher took it to send until then")
    # Retention: how long its outputs, logs and archive are kept once it ends (None: for ever)
    retention_seconds: int | None = Field(default=None, description="kept this long after it ends; None: for ever")
    expires: datetime | None = Field(default=None, description="finished + retention, stamped by the sweeper")
    expired: datetime | None = Field(default=None, description="when its objects were deleted for good")
    expiry_lease: datetime | None = Field(default=None, description="a sweeper is deleting its objects until then")
    packaging_resent: datetime | None = Field(default=None, description="when a lost packaging was last asked again")
    webhook: WebhookTarget | None = Field(default=None, description="where its terminal event is POSTed")

    @computed_field  # type: ignore[prop-decorator]  # stored with the job, so Mongo finds the jobs using a dataset
    @property
    def datasets(self) -> list[str]:
        """The ids of the datasets this job reads."""
        return sorted({value.dataset for value in self.inputs.values() if isinstance(value, DatasetInput)})

    def inputs_json(self) -> dict[str, Any]:
        """The inputs as plain JSON: file ids, or ``{dataset, path?}`` objects."""
        return {
            slot: value if isinstance(value, str) else value.model_dump(exclude_none=True)
            for slot, value in self.inputs.items()
        }

    @property
    def expiry(self) -> datetime | None:
        """When its objects are (or were) due for deletion: stamped, or reckoned from its end and retention."""
        if self.expires is not None or self.finished is None or self.retention_seconds is None:
            return self.expires
        return self.finished + timedelta(seconds=self.retention_seconds)

    @property
    def elapsed_seconds(self) -> float | None:
        """Run time so far, or in total once finished."""
        if self.started is None:
            return None
        end = self.finished or utcnow()
        return round((end - self.started).total_seconds(), 3)


class WorkerInfo(Record):
    """A runner or results worker, as it last reported itself."""

    id: str
    service: str
    host: str
    pid: int
    concurrency: int
    busy: int
    queues: list[str]
    started: datetime
    heartbeat: datetime

    def alive(self, heartbeat_seconds: float) -> bool:
        """Whether it reported within the last three heartbeat intervals."""
        return (utcnow() - self.heartbeat).total_seconds() < MISSED_BEATS * heartbeat_seconds


def job_event(job: Job, type: EventType, data: dict[str, Any]) -> Event:
    """A new event of ``job``'s, happening now."""
    return Event(id=new_event_id(), job_id=job.id, owner=job.owner, type=type, at=utcnow(), data=data)


def state_event(job: Job) -> Event:
    """The event saying ``job`` entered its current state (with its exit code and why, once finished)."""
    data: dict[str, Any] = {"state": job.state.value}
    if job.state.terminal:
        data |= {"exit_code": job.exit_code, "reason": None if job.error is None else job.error.reason}
    return job_event(job, "state", data)


# Webhooks: signed JSON events POSTed to a job's callback URL, or to its owner's registered webhooks

WEBHOOK_URL_MAX = 2048


class WebhookTarget(BaseModel):
    """Where a job's terminal event (and, if asked for, its progress) is POSTed: an http(s) URL without credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(min_length=1, max_length=WEBHOOK_URL_MAX, description="http or https; no user:password@")
    progress: bool = Field(default=False, description="also POST job.progress events while the job runs")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_webhook_url(url)


def check_webhook_url(url: str) -> str:
    """``url`` itself if it is an absolute http(s) URL with a host and no credentials; ValueError otherwise."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    try:
        parts.port  # noqa: B018  # raises on a port out of range or not a number
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return url


class Webhook(Record):
    """A URL a user registered: it receives the terminal events of their jobs that carry no webhook of their own."""

    id: str
    owner: str
    url: str
    progress: bool = False
    created: datetime


def webhook_receivers(
    job: Job, registered: Iterable[Webhook], *, progress: bool = False
) -> list[tuple[str | None, str]]:
    """(webhook id, or None for the job's own, and URL) of each receiver of ``job``'s events.

    The job's own webhook if it has one, else every webhook its owner ``registered``; with
    ``progress``, only those that asked for progress events.
    """
    if job.webhook is not None:
        return [(None, job.webhook.url)] if not progress or job.webhook.progress else []
    return [(webhook.id, webhook.url) for webhook in registered if not progress or webhook.progress]


class WebhookSecret(Record):
    """A user's signing secret (``id`` is the user's id); every delivery to them is signed with it."""

    id: str
    secret: str
    created: datetime


class DeliveryState(StrEnum):
    """Where a webhook delivery is: being tried, or done one way or the other."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryAttempt(Record):
    """One POST of a delivery: the receiver's status code, or why there was none."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class Delivery(Record):
    """One event for one receiver, with every attempt made to POST ``body`` (the exact JSON text sent)."""

    id: str
    owner: str
    job_id: str
    webhook: str | None = Field(default=None, description="the registered webhook; None: the job's own URL")
    url: str
    event: str
    body: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[DeliveryAttempt] = []
    created: datetime
    next_attempt: datetime | None = None
    lease: datetime | None = Field(default=None, description="a worker is POSTing it until then")
