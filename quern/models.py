"""The SDK's typed view of quern's resources, as the API answers them.

Every model accepts fields it does not know (``extra="allow"``), so a newer server never
breaks an older client; the fields named here are the ones the API documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"})


class Resource(BaseModel):
    """Something the API answered; unknown fields are kept as attributes."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Token(Resource):
    access_token: str
    token_type: str
    expires_at: datetime


class QuotaUse(Resource):
    used: int | None = None  # None for a quota on each request (batch_jobs)
    quota: int | None = None  # None: no quota


class Usage(Resource):
    """What the caller holds against each of their quotas (``GET /v1/me``)."""

    queued_jobs: QuotaUse
    stored_bytes: QuotaUse
    pending_uploads: QuotaUse
    event_streams: QuotaUse  # on the gateway that answered
    batch_jobs: QuotaUse


class User(Resource):
    id: str
    username: str
    role: str
    disabled: bool = False
    max_running: int | None = None
    quotas: dict[str, int | None] = {}  # the user's own; None: the deployment's
    created: datetime
    usage: Usage | None = None  # only in GET /v1/me


class ApiKey(Resource):
    id: str
    name: str
    owner: str
    created: datetime
    revoked: datetime | None = None
    secret: str | None = None  # qk_<id>.<secret>: only in the answer that created it


class File(Resource):
    id: str
    name: str
    size: int
    sha256: str
    content_type: str | None = None
    created: datetime


class Link(Resource):
    """A presigned URL, with what it points at."""

    url: str
    expires_at: datetime
    size: int | None = None
    sha256: str | None = None


class Member(Resource):
    path: str
    size: int
    sha256: str


class Dataset(Resource):
    id: str
    name: str
    description: str | None = None
    tags: list[str] = []
    kind: str
    member_count: int
    size: int
    members: list[Member] | None = None  # only when one dataset is asked for
    metadata: Any = None
    created: datetime


class App(Resource):
    name: str
    version: str
    description: str | None = None
    parameters: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    outputs: list[str] = []
    disabled: bool | None = None


class Progress(Resource):
    percent: float
    step: str
    at: datetime


class JobError(Resource):
    reason: str
    stderr_tail: str | None = None


class Output(Resource):
    path: str
    size: int
    sha256: str
    content_type: str | None = None


class OutputLink(Link):
    """A presigned GET of one output, and a presigned HEAD of it."""

    path: str
    head_url: str


class Job(Resource):
    id: str
    app: str
    app_version: str
    state: str
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    name: str | None = None
    tags: list[str] = []
    priority: int = 5
    queue: str = "default"
    exit_code: int | None = None
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    elapsed_seconds: float | None = None
    error: JobError | None = None
    progress: Progress | None = None
    outputs: list[Output] = []
    attempt: int = 1

    @property
    def done(self) -> bool:
        """Whether the job has reached a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


class BatchItem(Resource):
    id: str
    state: str
    name: str | None = None
    queue: str


class Batch(Resource):
    batch: str
    count: int
    items: list[BatchItem]


class LogSlice(Resource):
    name: str
    offset: int
    size: int
    next_offset: int
    text: str


class Event(Resource):
    """One job event: ``state``, ``progress``, ``log`` or ``archive``."""

    id: str
    job_id: str
    type: str
    at: datetime
    data: dict[str, Any] = {}


class Queue(Resource):
    id: str
    name: str
    owner: str
    description: str = ""
    paused: bool = False
    counts: dict[str, int] = {}
    total: int = 0


class Webhook(Resource):
    id: str
    target: str
    progress: bool = False
    created: datetime


class Delivery(Resource):
    id: str
    job_id: str
    event: str
    state: str
    attempts: list[dict[str, Any]] = []


class Worker(Resource):
    id: str
    service: str
    host: str
    pid: int
    concurrency: int
    busy: int
    last_heartbeat: datetime
    alive: bool


class Cluster(Resource):
    workers: list[Worker]
    queues: dict[str, dict[str, int]]
    jobs: dict[str, Any]
