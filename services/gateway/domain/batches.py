"""Batch submission: up to 10,000 jobs in one call, all validated before any is stored, all or nothing.

With an ``Idempotency-Key`` (``submit_batch_once``), a repeated request answers the batch the first one submitted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.idempotency import check_key, submit_once
from services.gateway.domain.job_metrics import SUBMITTED
from services.gateway.domain.quotas import Quotas, check_batch_size, check_queued_jobs
from services.gateway.domain.registry import find_app
from services.gateway.domain.retention import KEEP_FOREVER, RetentionPolicy
from services.gateway.domain.submission import (
    JobRequest,
    SubmissionStores,
    build_job,
    check_dependencies,
    check_inputs,
    check_queues,
    waiting,
)
from services.gateway.domain.webhooks import check_webhooks
from shared.apps import AppSpec
from shared.errors import AppError, Conflict, Invalid, NotFound, Violation
from shared.models import Batch, Job, new_id, state_event, utcnow
from shared.outbound import Network
from shared.store.apps import AppStore
from shared.store.batches import BatchStore
from shared.store.idempotency import IdempotencyStore

log = structlog.get_logger()
MAX_BATCH = 10_000
MAX_VIOLATIONS = 100


class BatchRequest(BaseModel):
    """The body of POST /v1/jobs/batch."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[JobRequest] = Field(min_length=1, max_length=MAX_BATCH, description="each as POST /v1/jobs takes it")


@dataclass(frozen=True)
class SubmittedBatch:
    """A batch's id and its jobs (on a replay, those of its jobs not deleted since)."""

    id: str
    jobs: list[Job]


async def find_apps(batch: BatchRequest, *, apps: AppStore) -> dict[str, AppSpec | AppError]:
    """The current version of every app the batch names, or why it cannot be used."""
    found: dict[str, AppSpec | AppError] = {}
    for name in sorted({item.app for item in batch.jobs}):
        try:
            found[name] = await find_app(name, apps=apps)
        except (NotFound, Conflict) as exc:
            found[name] = exc
    return found


def build_jobs(
    apps: dict[str, AppSpec | AppError],
    batch: BatchRequest,
    *,
    owner: str,
    batch_id: str,
    retention: RetentionPolicy = KEEP_FOREVER,
) -> list[Job]:
    """Every job of the batch, or Invalid pointing into ``/jobs/N`` at each of the first 100 problems."""
    jobs, violations = [], []
    for index, item in enumerate(batch.jobs):
        spec = apps[item.app]
        try:
            if isinstance(spec, AppError):
                raise Invalid(spec.detail, [Violation("/app", spec.detail)])
            job = build_job(spec, item, owner=owner, retention=retention)
            jobs.append(job.model_copy(update={"batch": batch_id}))
        except Invalid as exc:
            violations += [Violation(f"/jobs/{index}{v.pointer}", v.detail) for v in exc.violations]
        if len(violations) >= MAX_VIOLATIONS:
            break
    if violations:
        raise Invalid("the batch has invalid jobs; none was submitted", violations[:MAX_VIOLATIONS])
    return jobs


async def submit_batch(
    *,
    stores: SubmissionStores,
    batches: BatchStore,
    batch: BatchRequest,
    owner: str,
    wake: Callable[[], None],
    quotas: Quotas,
    batch_id: str,
    retention: RetentionPolicy = KEEP_FOREVER,
    networks: tuple[Network, ...] = (),
) -> list[Job]:
    """Validate every job, store them all, then commit the batch, which lets the dispatcher see them.

    If storing fails part way, what was stored is deleted again (and, should that fail too, the
    dispatcher deletes batches it finds abandoned), so a batch is accepted whole or not at all.
    """
    check_batch_size(len(batch.jobs), quotas=quotas)
    apps = await find_apps(batch, apps=stores.apps)
    # Thousands of validations take a good part of a second: not on the event loop.
    jobs = await run_in_threadpool(build_jobs, apps, batch, owner=owner, batch_id=batch_id, retention=retention)
    dependencies = {dep for job in jobs for dep in job.depends_on}
    if len(dependencies) > MAX_BATCH:
        detail = f"a batch may depend on at most {MAX_BATCH} distinct jobs, not {len(dependencies)}"
        raise Invalid(detail, [Violation("/jobs", detail)])
    await check_inputs([item.inputs for item in batch.jobs], owner=owner, files=stores.files, datasets=stores.datasets)
    await check_queues({job.queue for job in jobs}, owner=owner, queues=stores.queues)
    if dependencies:
        pending = await check_dependencies(dependencies, owner=owner, jobs=stores.jobs)
        jobs = [waiting(job, pending) for job in jobs]
    webhooks = [(f"/jobs/{index}/webhook", job.webhook) for index, job in enumerate(jobs) if job.webhook is not None]
    await check_webhooks(webhooks, owner=owner, networks=networks, webhooks=stores.webhooks)
    await check_queued_jobs(len(jobs), owner=owner, quotas=quotas, jobs=stores.jobs)
    try:
        await batches.insert_batch(Batch(id=batch_id, owner=owner, size=len(jobs), created=utcnow()), jobs)
        await batches.commit_batch(batch_id)
    except AppError:
        try:
            await batches.delete_batch(batch_id)
        except AppError:
            log.warning("batch_rollback_failed", batch=batch_id, jobs=len(jobs))
        raise
    await stores.events.record_events(await run_in_threadpool(lambda: [state_event(job) for job in jobs]))
    wake()
    for app, n in Counter(job.app for job in jobs).items():
        SUBMITTED.labels(app).inc(n)
    log.info("batch_submitted", batch=batch_id, jobs=len(jobs))
    return jobs


async def submit_batch_once(
    *,
    stores: SubmissionStores,
    batches: BatchStore,
    idempotency: IdempotencyStore,
    batch: BatchRequest,
    owner: str,
    key: str | None,
    wake: Callable[[], None],
    quotas: Quotas,
    retention: RetentionPolicy = KEEP_FOREVER,
    networks: tuple[Network, ...] = (),
) -> tuple[SubmittedBatch, bool]:
    """The batch submitted now (False), or (True) the one an earlier request with this ``Idempotency-Key`` submitted.

    Without a key every request submits a batch; a malformed key is 400, one used with another request 409.
    """

    async def submit(batch_id: str) -> SubmittedBatch:
        jobs = await submit_batch(
            stores=stores,
            batches=batches,
            batch=batch,
            owner=owner,
            wake=wake,
            quotas=quotas,
            batch_id=batch_id,
            retention=retention,
            networks=networks,
        )
        return SubmittedBatch(batch_id, jobs)

    async def replay(batch_id: str) -> SubmittedBatch:
        return SubmittedBatch(batch_id, await batches.batch_jobs(batch_id, owner=owner))

    if key is None:
        return await submit(new_id()), False
    return await submit_once(
        idempotency=idempotency,
        owner=owner,
        key=check_key(key),
        request=await run_in_threadpool(lambda: {"batch": batch.model_dump(mode="json")}),
        submit=submit,
        replay=replay,
    )
