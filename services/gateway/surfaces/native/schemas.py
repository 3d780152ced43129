"""The shapes of the gateway's answers, as the OpenAPI document publishes them.

Handlers render plain dicts; these models describe them, and the schemathesis test in the
suite checks every real answer against them, so the two cannot drift apart quietly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.pages import PageOut
from shared.models import JobState, Role


class Health(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]
    checks: dict[str, str]


class Token(Out):
    access_token: str
    token_type: Literal["bearer"]
    expires_at: str


class UserOut(Out):
    id: str
    url: str
    username: str
    role: Role
    disabled: bool
    max_running: int | None = Field(description="the user's own limit of jobs at once; null: the deployment's")
    created: str


class FileOut(Out):
    id: str
    url: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    created: str


class FileDownload(Out):
    url: str
    expires_at: str
    size: int
    sha256: str


class PutTarget(Out):
    url: str
    headers: dict[str, str]


class PartTarget(Out):
    number: int
    url: str
    size: int


class UploadOut(FileOut):
    """A pending upload: the file it will become, and where to send its bytes."""

    expires_at: str
    put: PutTarget | None = Field(description="one PUT for the whole file (up to the single-PUT limit)")
    part_size: int | None
    parts: list[PartTarget] | None = Field(description="one PUT per part, for larger files")
    complete: str = Field(description="POST here once the bytes are in")


class MemberOut(Out):
    path: str
    size: int
    sha256: str


class DatasetSummary(Out):
    id: str
    url: str
    owner: str
    name: str
    description: str
    tags: list[str]
    kind: Literal["zip", "tar", "tar.gz"]
    member_count: int
    size: int
    metadata: dict[str, Any] | None = Field(description="Pacifica metadata.txt, parsed")
    source_file: str
    created: str
    updated: str


class DatasetOut(DatasetSummary):
    members: list[MemberOut]


class AppSummary(Out):
    name: str
    url: str
    version: str
    description: str
    disabled: bool = Field(description="This version takes no new jobs (for an app: none of its versions does)")
    source: Literal["directory", "api"] = Field(description="Registered from the app directory or through the API")
    registered: str
    registered_by: str


class AppOut(AppSummary):
    parameters: dict[str, Any] = Field(description="JSON Schema of the parameters")
    inputs: dict[str, dict[str, Any]]
    outputs: list[str]
    timeout: dict[str, int]
    limits: dict[str, int | None]
    command: list[str]
    driver: Literal["local", "docker"] = Field(description="How runners start the app: a local process or a container")
    image: str | None = Field(description="The container image (docker apps)")
    example: dict[str, Any] | None
    disabled_at: str | None
    disabled_by: str | None


class AppList(Out):
    items: list[AppSummary]


class OutputOut(Out):
    path: str
    size: int
    sha256: str
    content_type: str


class ArchiveOut(Out):
    size: int
    sha256: str
    created: str


class JobErrorOut(Out):
    reason: str
    stderr_tail: str


class StateChangeOut(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    at: str
    from_: JobState = Field(alias="from")
    to: JobState
    by: str = Field(description="the admin's username")
    reason: str


class JobLinks(Out):
    self: str
    app: str
    archive: str
    outputs: str
    events: str
    logs: dict[str, str] = Field(description="log name -> its byte-range reader, once the job has ended")
    deliveries: str = Field(description="the webhook deliveries of its events")


class ProgressOut(Out):
    percent: float = Field(ge=0, le=100)
    step: str
    at: str


class RetryPolicyOut(Out):
    exit_codes: list[int]
    attempts: int


class WebhookTargetOut(Out):
    url: str
    progress: bool = Field(description="whether job.progress events are POSTed too")


class JobOut(Out):
    id: str
    url: str
    owner: str
    app: str
    app_version: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    timeout_seconds: int
    name: str | None
    tags: list[str]
    priority: int = Field(ge=0, le=9)
    rerun_of: str | None = Field(description="the id of the job this one re-runs")
    state: JobState
    exit_code: int | None
    created: str
    started: str | None
    finished: str | None
    elapsed_seconds: float | None
    error: JobErrorOut | None
    cancel_requested: str | None = Field(description="when a cancel of the running job was asked for")
    outputs: list[OutputOut]
    archive: ArchiveOut | None
    history: list[StateChangeOut] = Field(description="forced state changes, oldest first")
    progress: ProgressOut | None = Field(description='the app\'s latest ##quern progress PERCENT "STEP" line')
    queue: str
    attempt: int = Field(ge=1, description="which run this is; recovery from a dead worker adds one")
    retry: RetryPolicyOut | None = Field(description="exit codes that mean: run again, and the most runs in all")
    batch: str | None = Field(description="the batch it was submitted in")
    depends_on: list[str] = Field(description="jobs that must succeed before this one starts")
    waiting_on: list[str] = Field(description="those of depends_on that have not succeeded yet")
    dispatched: str | None = Field(description="when it was sent to the runners (null while it waits)")
    retention_seconds: int | None = Field(description="its results are kept this long after it ends (null: for ever)")
    expires: str | None = Field(description="when its outputs, logs and archive are deleted (null: not set, or never)")
    expired: str | None = Field(description="when they were deleted; its archive, logs and outputs then answer 410")
    webhook: WebhookTargetOut | None = Field(description="its own receiver of its terminal event, if it has one")
    links: JobLinks


class LogSlice(Out):
    name: str
    offset: int = Field(description="where this slice starts")
    size: int = Field(description="the whole log's size in bytes")
    next_offset: int = Field(description="where the next slice starts (size once at the end)")
    text: str = Field(description="the bytes as UTF-8 (invalid sequences replaced)")


class ArchiveLink(Out):
    url: str
    expires_at: str
    size: int
    sha256: str
    created: str
    include: list[str] | None = Field(description="a selective archive's globs, sorted; null for the full archive")


# Outputs: listed, and downloaded one at a time


class ListedOutput(Out):
    path: str = Field(description="relative to the app's working directory")
    size: int
    sha256: str
    content_type: str
    url: str = Field(description="the route that hands out this output's download link")


class OutputList(Out):
    job_id: str
    items: list[ListedOutput] = Field(description="every output of the job (not paginated)")


class OutputLink(Out):
    path: str
    url: str = Field(description="presigned GET; saves as the output's base name")
    head_url: str = Field(description="presigned HEAD (S3 signs the method, so the GET URL will not do)")
    expires_at: str
    size: int
    sha256: str
    content_type: str


class WorkerOut(Out):
    id: str
    service: str
    host: str
    pid: int
    concurrency: int
    busy: int
    queues: list[str]
    started: str
    last_heartbeat: str
    seconds_since_heartbeat: float
    alive: bool


class QueueDepth(Out):
    messages: int
    consumers: int


class JobCounts(Out):
    scope: Literal["all", "mine"]
    queued: int
    running: int
    by_app: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, int]] = Field(description="queue name (an admin's: OWNER_ID/name) -> state -> count")


class Cluster(Out):
    workers: list[WorkerOut]
    queues: dict[str, QueueDepth]
    jobs: JobCounts


class FilePage(PageOut[FileOut]):
    pass


class DatasetPage(PageOut[DatasetSummary]):
    pass


class JobPage(PageOut[JobOut]):
    pass


class UserPage(PageOut[UserOut]):
    pass


class QueueLinks(Out):
    self: str
    jobs: str = Field(description="the queue's jobs")


class UserQueueOut(Out):
    id: str
    url: str
    owner: str
    name: str
    description: str
    paused: bool
    created: str
    updated: str
    counts: dict[str, int] = Field(description="jobs per state")
    total: int
    links: QueueLinks


class UserQueuePage(PageOut[UserQueueOut]):
    pass


class RetryOut(Out):
    retried: list[str] = Field(description="jobs put back to QUEUED")
    skipped: list[str] = Field(description="jobs still being packaged, or changed meanwhile; retry again later")
    more: bool = Field(description="more jobs matched than the limit; call again")


class RecoverOut(Out):
    recovered: list[str] = Field(description="RUNNING jobs of gone workers put back to QUEUED")


class BatchItem(Out):
    id: str
    url: str
    state: JobState
    name: str | None
    queue: str


class BatchLinks(Out):
    jobs: str = Field(description="the batch's jobs, as a filtered job list")


class BatchOut(Out):
    batch: str
    count: int
    items: list[BatchItem]
    links: BatchLinks


# Webhooks


class WebhookSecretOut(Out):
    secret: str = Field(description="whsec_...: shown in this answer only; every delivery to you is signed with it")
    created: str


class WebhookOut(Out):
    id: str
    url: str = Field(description="this webhook's own URL in the API")
    target: str = Field(description="where events are POSTed")
    progress: bool = Field(description="whether job.progress events are POSTed too")
    owner: str
    created: str


class WebhookPage(PageOut[WebhookOut]):
    pass


class DeliveryAttemptOut(Out):
    at: str
    status_code: int | None = Field(description="the receiver's answer; null when there was none")
    error: str | None = Field(description="why there was no answer (refused address, timeout, connection error)")
    duration_ms: int


class DeliveryOut(Out):
    id: str
    job_id: str
    webhook: str | None = Field(description="the registered webhook; null: the job's own URL")
    url: str
    event: Literal["job.succeeded", "job.failed", "job.timed_out", "job.canceled"]
    body: str = Field(description="the exact JSON text POSTed and signed")
    state: Literal["pending", "succeeded", "failed"]
    created: str
    next_attempt: str | None = Field(description="when the next attempt is due, while pending")
    attempts: list[DeliveryAttemptOut]


class DeliveryList(Out):
    items: list[DeliveryOut]
