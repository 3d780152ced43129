"""Webhook deliveries: a job's events, signed and POSTed to its receivers until one answers 2xx.

A job's terminal event is announced once its archive is attached: one delivery per receiver
(the job's own URL, or else each webhook its owner registered), with a deterministic id so a
packager run twice records it once. Receivers that asked for progress also get ``job.progress``
while the job runs (the runner asks at most every ``WEBHOOK_PROGRESS_SECONDS``); those are
tried at most three times, since a later report soon replaces them. Each attempt is made
under a lease and appended to the delivery; the first 2xx ends it (``succeeded``), and after
``WEBHOOK_MAX_ATTEMPTS`` it is ``failed``. Attempts are ``WEBHOOK_BACKOFF_SECONDS`` x 2^(n-1)
apart, at most six hours.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from shared.errors import NotFound
from shared.models import Delivery, DeliveryAttempt, DeliveryState, Job, JobState, Webhook, utcnow, webhook_receivers
from shared.outbound import Outcome, post
from shared.settings import ResultsSettings
from shared.store.jobs import JobStore
from shared.store.webhooks import WebhookStore

log = structlog.get_logger()
LEASE_MARGIN_SECONDS = 30  # beyond the request timeout, before another worker may try the same delivery
MAX_DELAY_SECONDS = 6 * 3600
PROGRESS_EVENT = "job.progress"
PROGRESS_ATTEMPTS = 3
NO_SECRET = "its owner has no signing secret: create one with POST /v1/webhook-secret"


def sign(secret: str, timestamp: int, body: str) -> str:
    """The ``Quern-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_type(job: Job) -> str:
    """``job.succeeded``, ``job.failed``, ``job.timed_out`` or ``job.canceled``."""
    return f"job.{job.state.value.lower()}"


def delivery_id(job: Job, target: str) -> str:
    """The same for every packager of one run's end: job id, the end's time in ms, and the receiver."""
    finished = 0 if job.finished is None else int(job.finished.timestamp() * 1000)
    return f"{job.id}-{finished}-{target}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def event_body(job: Job, *, delivery: str, event: str) -> str:
    """The JSON text POSTed (and signed) for ``event`` of ``job``'s: its end, or its latest progress."""
    payload: dict[str, Any] = {
        "id": delivery,
        "type": event,
        "created": utcnow().isoformat(),
        "job": {
            "id": job.id,
            "owner": job.owner,
            "app": job.app,
            "app_version": job.app_version,
            "name": job.name,
            "tags": job.tags,
            "queue": job.queue,
            "state": job.state.value,
            "exit_code": job.exit_code,
            "error": None if job.error is None else job.error.model_dump(),
            "attempt": job.attempt,
            "created": _iso(job.created),
            "started": _iso(job.started),
            "finished": _iso(job.finished),
            "archive": None if job.archive is None else {"size": job.archive.size, "sha256": job.archive.sha256},
            "progress": None if job.progress is None else job.progress.model_dump(mode="json"),
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


async def announce(job: Job, *, webhooks: WebhookStore, send: Callable[[str], Awaitable[None]]) -> list[str]:
    """Record the job's terminal event for each receiver and send the new ones off; returns their ids."""
    targets = webhook_receivers(job, await _registered(job, webhooks=webhooks))
    event = event_type(job)
    return await _record(
        job, targets, event=event, key=lambda target: delivery_id(job, target), webhooks=webhooks, send=send
    )


async def announce_progress(
    job: Job, event_id: str, *, webhooks: WebhookStore, send: Callable[[str], Awaitable[None]]
) -> list[str]:
    """Record a running job's latest progress for each receiver that asked for progress; returns the ids sent.

    A job no longer running is left alone: its terminal event is the news now, and a progress
    report arriving after it would only confuse a receiver.
    """
    if job.state is not JobState.RUNNING or job.progress is None:
        return []
    targets = webhook_receivers(job, await _registered(job, webhooks=webhooks), progress=True)
    return await _record(
        job,
        targets,
        event=PROGRESS_EVENT,
        key=lambda target: f"{job.id}-{event_id}-{target}",
        webhooks=webhooks,
        send=send,
    )


async def _registered(job: Job, *, webhooks: WebhookStore) -> list[Webhook]:
    """The owner's registered webhooks, looked up only when the job has no webhook of its own."""
    return [] if job.webhook is not None else await webhooks.owner_webhooks(job.owner)


async def _record(
    job: Job,
    targets: list[tuple[str | None, str]],
    *,
    event: str,
    key: Callable[[str], str],
    webhooks: WebhookStore,
    send: Callable[[str], Awaitable[None]],
) -> list[str]:
    """One delivery of ``event`` per receiver, recorded once whoever asks twice; the new ones are sent off."""
    sent = []
    for webhook, url in targets:
        delivery_key = key(webhook or "job")
        fresh = Delivery(
            id=delivery_key,
            owner=job.owner,
            job_id=job.id,
            webhook=webhook,
            url=url,
            event=event,
            body=event_body(job, delivery=delivery_key, event=event),
            created=utcnow(),
        )
        delivery = await webhooks.add_delivery(fresh)
        if delivery.state is DeliveryState.PENDING and not delivery.attempts:
            # A packager run twice may send it twice: the lease lets one attempt through at a time.
            await send(delivery.id)
            sent.append(delivery.id)
    if sent:
        log.info("webhook_announced", job_id=job.id, event_type=event, deliveries=sent)
    return sent


def attempts_allowed(delivery: Delivery, settings: ResultsSettings) -> int:
    """How many attempts a delivery gets: a progress report soon goes stale, so at most three."""
    if delivery.event == PROGRESS_EVENT:
        return min(PROGRESS_ATTEMPTS, settings.webhook_max_attempts)
    return settings.webhook_max_attempts


def backoff_seconds(attempts: int, base: float) -> float:
    """How long to wait after the ``attempts``-th failed attempt."""
    return float(min(base * 2 ** min(attempts - 1, 30), MAX_DELAY_SECONDS))


async def deliver(
    delivery_id: str, *, webhooks: WebhookStore, jobs: JobStore, settings: ResultsSettings
) -> float | None:
    """Make one attempt at a pending delivery; the seconds until the next one, or None when there is none to make."""
    try:
        delivery = await webhooks.get_delivery(delivery_id)
    except NotFound:
        log.info("delivery_gone", delivery_id=delivery_id)
        return None
    if delivery.state is not DeliveryState.PENDING:
        return None
    now = utcnow()
    leased = await webhooks.lease_delivery(
        delivery_id, now=now, until=now + timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
    )
    if leased is None or leased.lease is None:
        current = await webhooks.get_delivery(delivery_id)
        if current.state is not DeliveryState.PENDING or current.lease is None:
            return None
        return max((current.lease - utcnow()).total_seconds(), 1.0)  # another worker is trying it: look again then
    stale = await _stale(leased, jobs=jobs)
    outcome = (
        Outcome(status_code=None, error=stale, duration_ms=0)
        if stale
        else await _attempt(leased, webhooks=webhooks, settings=settings)
    )
    made = len(leased.attempts) + 1
    succeeded = outcome.status_code is not None and 200 <= outcome.status_code < 300
    if succeeded:
        state, delay = DeliveryState.SUCCEEDED, None
    elif stale or made >= attempts_allowed(leased, settings):
        state, delay = DeliveryState.FAILED, None
    else:
        state, delay = DeliveryState.PENDING, backoff_seconds(made, settings.webhook_backoff_seconds)
    attempt = DeliveryAttempt(
        at=now, status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms
    )
    next_attempt = None if delay is None else utcnow() + timedelta(seconds=delay)
    recorded = await webhooks.record_attempt(
        delivery_id, attempt, lease=leased.lease, state=state, next_attempt=next_attempt
    )
    log.info(
        "webhook_attempted",
        delivery_id=delivery_id,
        attempt=made,
        status_code=outcome.status_code,
        error=outcome.error,
        state=state.value,
        lease_lost=recorded is None,
    )
    return None if recorded is None else delay


async def _stale(delivery: Delivery, *, jobs: JobStore) -> str | None:
    """Why a progress report is no longer worth sending (its job has ended or is gone), if it is not."""
    if delivery.event != PROGRESS_EVENT:
        return None
    try:
        job = await jobs.get_job(delivery.job_id)
    except NotFound:
        return "not sent: the job is gone"
    return None if job.state is JobState.RUNNING else f"not sent: the job has ended ({job.state.value})"


async def _attempt(delivery: Delivery, *, webhooks: WebhookStore, settings: ResultsSettings) -> Outcome:
    secret = await webhooks.get_webhook_secret(delivery.owner)
    if secret is None:
        return Outcome(status_code=None, error=NO_SECRET, duration_ms=0)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "quern-webhooks/1",
        "Quern-Signature": sign(secret.secret, int(time.time()), delivery.body),
        "Quern-Delivery": delivery.id,
        "Quern-Event": delivery.event,
    }
    return await post(
        delivery.url,
        delivery.body.encode(),
        headers,
        timeout=settings.webhook_timeout_seconds,
        networks=settings.allowed_networks(),
    )
