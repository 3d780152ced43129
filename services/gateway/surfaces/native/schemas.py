"""The shapes of the gateway's answers, as the OpenAPI document publishes them.

Handlers render plain dicts; these models describe them, and the schemathesis test in the
suite checks every real answer against them, so the two cannot drift apart quietly.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.pages import PageOut
from shared.models import JobState


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


class JobPage(PageOut[JobOut]):
    pass


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
