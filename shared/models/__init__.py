"""The records the services share through MongoDB, one module per aggregate; every public name is here too.

Ids are ULID strings: unique, sortable by creation time, and readable in URLs and logs.
"""

from __future__ import annotations

from shared.models.accounts import QUOTAS, ApiKey, QuotaOverrides, Role, User
from shared.models.datasets import Dataset, DatasetInput, DatasetMember, InputValue, dataset_prefix
from shared.models.events import Event, EventType, job_event, new_event_id, state_event
from shared.models.files import PendingUpload, StoredFile
from shared.models.jobs import (
    Archive,
    Job,
    JobError,
    JobProgress,
    JobState,
    OutputFile,
    RetryPolicy,
    Selection,
    StateChange,
    checkpoint_key,
    job_prefix,
    run_prefix,
    webhook_receivers,
)
from shared.models.queues import DEFAULT_QUEUE, Batch, Queue
from shared.models.records import Record, new_id, utcnow
from shared.models.tasks import (
    TASK_APP,
    TASK_APP_VERSION,
    ExecutorLog,
    OutputFileLog,
    TaskExecutor,
    TaskInput,
    TaskOutput,
    TaskPolicy,
    TaskResources,
    TaskSpec,
    TaskTag,
)
from shared.models.webhooks import (
    WEBHOOK_URL_MAX,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Webhook,
    WebhookSecret,
    WebhookTarget,
    check_webhook_url,
)
from shared.models.workers import MISSED_BEATS, WorkerInfo

__all__ = [
    "DEFAULT_QUEUE",
    "MISSED_BEATS",
    "QUOTAS",
    "TASK_APP",
    "TASK_APP_VERSION",
    "WEBHOOK_URL_MAX",
    "ApiKey",
    "Archive",
    "Batch",
    "Dataset",
    "DatasetInput",
    "DatasetMember",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryState",
    "Event",
    "EventType",
    "ExecutorLog",
    "InputValue",
    "Job",
    "JobError",
    "JobProgress",
    "JobState",
    "OutputFile",
    "OutputFileLog",
    "PendingUpload",
    "Queue",
    "QuotaOverrides",
    "Record",
    "RetryPolicy",
    "Role",
    "Selection",
    "StateChange",
    "StoredFile",
    "TaskExecutor",
    "TaskInput",
    "TaskOutput",
    "TaskPolicy",
    "TaskResources",
    "TaskSpec",
    "TaskTag",
    "User",
    "Webhook",
    "WebhookSecret",
    "WebhookTarget",
    "WorkerInfo",
    "check_webhook_url",
    "checkpoint_key",
    "dataset_prefix",
    "job_event",
    "job_prefix",
    "new_event_id",
    "new_id",
    "run_prefix",
    "state_event",
    "utcnow",
    "webhook_receivers",
]
