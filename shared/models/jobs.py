"""Jobs: one run of an app, with what it produced, how it ended, and who receives its events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_serializer, field_validator

from shared.models.datasets import DatasetInput, InputValue
from shared.models.queues import DEFAULT_QUEUE
from shared.models.records import Record, utcnow
from shared.models.tasks import ExecutorLog, OutputFileLog, TaskSpec, TaskTag
from shared.models.webhooks import Webhook, WebhookTarget


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


def job_prefix(job_id: str) -> str:
    """The S3 prefix of everything a job owns in S3: each run's outputs, logs and archives, and its checkpoint."""
    return f"jobs/{job_id}/"


def run_prefix(job_id: str, run_token: str | None) -> str:
    """The S3 prefix of one run's outputs, logs and archives, so a stale run never writes over the current one.

    Jobs run before runs had tokens kept their objects straight under the job's prefix.
    """
    return job_prefix(job_id) if run_token is None else f"jobs/{job_id}/runs/{run_token}/"


def checkpoint_key(job_id: str) -> str:
    """Where a preempted run's checkpoint directory is kept, as a tar.gz, for the job's next run."""
    return f"jobs/{job_id}/checkpoint.tar.gz"


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
    outputs: list[OutputFile] = Field(default=[])
    logs: dict[str, str] = Field(default={}, description="log name (stdout, stderr) -> S3 key")
    archive: Archive | None = None
    selections: dict[str, Selection] = Field(default={}, description="sha256 of the sorted globs -> its archive")
    name: str | None = None
    tags: list[str] = Field(default=[])
    priority: int = 5
    rerun_of: str | None = Field(default=None, description="the job this one re-runs")
    history: list[StateChange] = Field(default=[], description="forced state changes, oldest first")
    progress: JobProgress | None = None
    queue: str = DEFAULT_QUEUE
    attempt: int = Field(default=1, description="which run this is: recovery from a dead worker adds one")
    preemptions: int = Field(default=0, description="runs handed back by a runner shutting down (not attempts)")
    run_token: str | None = Field(default=None, description="the current run's token, new at each claim")
    lease: datetime | None = Field(default=None, description="when its runner last renewed its claim (database time)")
    checkpoint: str | None = Field(default=None, description="S3 key of the checkpoint a preempted run left")
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
    packaging_lease: datetime | None = Field(default=None, description="a packager is building its archive until then")
    webhook: WebhookTarget | None = Field(default=None, description="where its terminal event is POSTed")
    receivers_added: bool = Field(
        default=False, description="its owner registered a webhook while it was active (or had one at its take)"
    )
    # A GA4GH TES task (app TASK_APP): what it runs, its tags as pairs, and what its runs recorded
    task: TaskSpec | None = Field(default=None, description="the TES task this job runs; stored as JSON text")
    task_tags: list[TaskTag] = Field(default=[], description="the task's tags, as pairs a query can match")
    executor_logs: list[ExecutorLog] = Field(default=[], description="one per executor started, in order")
    output_logs: list[OutputFileLog] = Field(default=[], description="the files the task's outputs delivered")

    @field_validator("task", mode="before")
    @classmethod
    def _task_text(cls, value: object) -> object:
        return TaskSpec.model_validate_json(value) if isinstance(value, str) else value

    @field_serializer("task")
    def _task_as_text(self, task: TaskSpec | None) -> str | None:
        return None if task is None else task.model_dump_json(exclude_defaults=True)

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
