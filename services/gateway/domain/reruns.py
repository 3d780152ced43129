"""Rerun: a new job cloned from an old one, with optional overrides, validated like any submission."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.domain.datasets import Name, Tag
from services.gateway.domain.quotas import Quotas
from services.gateway.domain.registry import find_app
from services.gateway.domain.retention import KEEP_FOREVER, RetentionPolicy
from services.gateway.domain.submission import MAX_TAGS, JobRequest, QueueName, SubmissionStores, submit_job
from shared.apps import MAX_RETENTION, AppSpec
from shared.errors import Conflict, NotFound
from shared.models import TASK_APP, InputValue, Job, WebhookTarget
from shared.outbound import Network
from shared.store.apps import AppStore


class RerunRequest(BaseModel):
    """The optional body of POST /v1/jobs/{id}/rerun: what to change; everything else is the old job's."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default={}, description="merged over the old parameters, name by name")
    inputs: dict[str, InputValue] = Field(default={}, description="merged over the old inputs, slot by slot")
    timeout_seconds: int | None = Field(default=None, ge=1)
    name: Name | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    priority: int | None = Field(default=None, ge=0, le=9)
    queue: QueueName | None = None
    retention_seconds: int | None = Field(default=None, ge=1, le=MAX_RETENTION)
    webhook: WebhookTarget | None = Field(default=None, description="a URL for the new job's terminal event")


async def installed_spec(job: Job, *, apps: AppStore) -> AppSpec:
    """The app version the job ran, if it is still the current one; Conflict otherwise (and for a TES task)."""
    if job.app == TASK_APP:
        raise Conflict(f"job {job.id} is a GA4GH TES task: submit it again with POST /ga4gh/tes/v1/tasks")
    try:
        spec = await find_app(job.app, apps=apps)
    except NotFound:
        raise Conflict(f"job {job.id} ran app {job.app}, which is no longer registered") from None
    if spec.version != job.app_version:
        raise Conflict(
            f"job {job.id} ran {job.app} {job.app_version}, but {spec.version} is its current version now; "
            "submit a new job to run the new version"
        )
    return spec


def clone_request(job: Job, changes: RerunRequest, *, retention: RetentionPolicy = KEEP_FOREVER) -> JobRequest:
    """The submission that repeats ``job`` with ``changes`` applied."""
    kept = job.retention_seconds
    if kept is not None and retention.max_seconds is not None:
        kept = min(kept, retention.max_seconds)  # the old job's retention, not an ask: a lowered maximum cuts it
    return JobRequest(
        app=job.app,
        params=job.params | changes.params,
        inputs=job.inputs | changes.inputs,
        timeout_seconds=changes.timeout_seconds or job.timeout_seconds,
        name=changes.name if changes.name is not None else job.name,
        tags=changes.tags if changes.tags is not None else job.tags,
        priority=changes.priority if changes.priority is not None else job.priority,
        queue=changes.queue or job.queue,
        retry=job.retry,
        retention_seconds=changes.retention_seconds if changes.retention_seconds is not None else kept,
        webhook=changes.webhook or job.webhook,
    )


async def rerun_job(
    *,
    stores: SubmissionStores,
    wake: Callable[[], None],
    job_id: str,
    owner: str | None,
    changes: Callable[[], RerunRequest],
    quotas: Callable[[str], Awaitable[Quotas]],
    retention: RetentionPolicy = KEEP_FOREVER,
    networks: tuple[Network, ...] = (),
) -> Job:
    """Submit a copy of the job (for its owner) with the changes; 409 if its app version is gone.

    ``changes`` is read once the job is found, so a job the caller may not see is NotFound
    before anything is said about the body.
    """
    job = await stores.jobs.get_job(job_id, owner=owner)
    wanted = changes()
    await installed_spec(job, apps=stores.apps)
    return await submit_job(
        stores=stores,
        request=clone_request(job, wanted, retention=retention),
        owner=job.owner,
        wake=wake,
        quotas=await quotas(job.owner),
        rerun_of=job.id,
        retention=retention,
        networks=networks,
    )
