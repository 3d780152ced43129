"""Webhooks: each user's signing secret, the URLs they register, and the deliveries made to them.

A job's terminal event goes to the job's own ``webhook`` URL if it has one, else to every
webhook its owner registered; every delivery to a user is signed with that user's secret
(``POST /v1/webhook-secret``, shown once). The results service makes the deliveries.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.bodies import read_model
from services.gateway.links import link
from services.gateway.pages import page_request, page_response
from services.gateway.state import deps
from shared.broker import Broker
from shared.errors import Conflict, Invalid, Unavailable, Violation
from shared.models import Delivery, Job, Webhook, WebhookSecret, WebhookTarget, new_id, utcnow
from shared.outbound import Network, literal_host_allowed
from shared.store.jobs import JobStore
from shared.store.webhooks import WebhookStore
from shared.tasks import ANNOUNCE_END

log = structlog.get_logger()
SECRET_PREFIX = "whsec_"
MAX_WEBHOOKS = 10
NO_SECRET = "create your signing secret first with POST /v1/webhook-secret: webhook events are signed with it"


class NewWebhook(WebhookTarget):
    """The body of POST /v1/webhooks."""

    model_config = ConfigDict(frozen=True, extra="forbid")


async def check_webhooks(
    targets: Iterable[tuple[str, WebhookTarget]], *, owner: str, networks: tuple[Network, ...], webhooks: WebhookStore
) -> None:
    """Each (pointer, target) must not name a plainly private host (422), and the owner must have a secret (409)."""
    targets = list(targets)
    for pointer, target in targets:
        host = urlsplit(target.url).hostname or ""
        if not literal_host_allowed(host, networks):
            detail = f"{host} is not a public address"
            raise Invalid(f"the webhook URL is refused: {detail}", [Violation(f"{pointer}/url", detail)])
    if targets and await webhooks.get_webhook_secret(owner) is None:
        raise Conflict(NO_SECRET)


async def announce_end(broker: Broker, job: Job) -> None:
    """Have the results service announce the end of a job no packager will see (it never ran, or had ended already).

    Best effort: with RabbitMQ down, the end stands and its webhook event is lost (and logged).
    """
    try:
        await run_in_threadpool(broker.send, ANNOUNCE_END, job.id)
    except Unavailable as exc:
        log.warning("webhook_announce_lost", job_id=job.id, state=job.state.value, detail=exc.detail)


async def rotate_secret(*, webhooks: WebhookStore, owner: str) -> WebhookSecret:
    """A new signing secret for ``owner``, replacing the old one at once."""
    secret = WebhookSecret(id=owner, secret=SECRET_PREFIX + secrets.token_urlsafe(32), created=utcnow())
    await webhooks.set_webhook_secret(secret)
    log.info("webhook_secret_rotated", owner=owner)
    return secret


async def register_webhook(
    *, webhooks: WebhookStore, target: WebhookTarget, owner: str, networks: tuple[Network, ...]
) -> Webhook:
    """Register a default webhook for ``owner`` (at most ten; 409 beyond, or without a signing secret)."""
    await check_webhooks([("", target)], owner=owner, networks=networks, webhooks=webhooks)
    if len(await webhooks.owner_webhooks(owner)) >= MAX_WEBHOOKS:
        raise Conflict(f"at most {MAX_WEBHOOKS} webhooks per user; delete one first")
    webhook = Webhook(id=new_id(), owner=owner, url=target.url, progress=target.progress, created=utcnow())
    await webhooks.insert_webhook(webhook)
    log.info("webhook_registered", webhook_id=webhook.id)
    return webhook


def render_webhook(request: Request, webhook: Webhook) -> dict[str, Any]:
    """The public view of a registered webhook."""
    return {
        "id": webhook.id,
        "url": link(request, "webhook", webhook_id=webhook.id),
        "target": webhook.url,
        "progress": webhook.progress,
        "owner": webhook.owner,
        "created": webhook.created.isoformat(),
    }


def render_delivery(delivery: Delivery) -> dict[str, Any]:
    """The public view of a delivery, every attempt included."""
    return {
        "id": delivery.id,
        "job_id": delivery.job_id,
        "webhook": delivery.webhook,
        "url": delivery.url,
        "event": delivery.event,
        "body": delivery.body,
        "state": delivery.state.value,
        "created": delivery.created.isoformat(),
        "next_attempt": None if delivery.next_attempt is None else delivery.next_attempt.isoformat(),
        "attempts": [attempt.model_dump(mode="json") for attempt in delivery.attempts],
    }


async def new_secret(request: Request) -> Response:
    """POST /v1/webhook-secret: a new signing secret, shown in this answer only (a body is ignored)."""
    secret = await rotate_secret(webhooks=deps(request).stores.webhooks, owner=principal(request).user_id)
    return JSONResponse({"secret": secret.secret, "created": secret.created.isoformat()}, status_code=201)


async def create(request: Request) -> Response:
    """POST /v1/webhooks {url, progress?}."""
    d = deps(request)
    body = await read_model(request, NewWebhook)
    webhook = await register_webhook(
        webhooks=d.stores.webhooks,
        target=body,
        owner=principal(request).user_id,
        networks=d.settings.allowed_networks(),
    )
    rendered = render_webhook(request, webhook)
    return JSONResponse(rendered, status_code=201, headers={"Location": rendered["url"]})


async def list_webhooks(request: Request) -> Response:
    """GET /v1/webhooks: the caller's webhooks (an admin's: everyone's)."""
    wanted = page_request(request)
    page = await deps(request).stores.webhooks.list_webhooks(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return page_response(request, page, lambda webhook: render_webhook(request, webhook))


async def describe(request: Request) -> Response:
    """GET /v1/webhooks/{webhook_id}."""
    webhooks = deps(request).stores.webhooks
    webhook = await webhooks.get_webhook(request.path_params["webhook_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_webhook(request, webhook))


async def delete_webhook(*, webhooks: WebhookStore, webhook_id: str, owner: str | None) -> None:
    """Forget a registered webhook (NotFound unless ``owner``'s); deliveries under way go on."""
    webhook = await webhooks.get_webhook(webhook_id, owner=owner)
    await webhooks.delete_webhook(webhook.id)
    log.info("webhook_deleted", webhook_id=webhook.id)


async def deliveries_of(*, jobs: JobStore, webhooks: WebhookStore, job_id: str, owner: str | None) -> list[Delivery]:
    """The deliveries of a job's events (NotFound unless it is ``owner``'s), oldest first."""
    job = await jobs.get_job(job_id, owner=owner)
    return await webhooks.job_deliveries(job.id)


async def remove(request: Request) -> Response:
    """DELETE /v1/webhooks/{webhook_id}: no new deliveries go to it; those under way go on."""
    await delete_webhook(
        webhooks=deps(request).stores.webhooks,
        webhook_id=request.path_params["webhook_id"],
        owner=principal(request).owner_filter,
    )
    return Response(status_code=204)


async def job_deliveries(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/deliveries: every delivery of the job's events, with its attempts."""
    stores = deps(request).stores
    deliveries = await deliveries_of(
        jobs=stores.jobs,
        webhooks=stores.webhooks,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
    )
    return JSONResponse({"items": [render_delivery(delivery) for delivery in deliveries]})
