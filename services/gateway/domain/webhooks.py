"""Webhooks: each user's signing secret, the URLs they register, and the deliveries made to them.

A job's terminal event goes to the job's own ``webhook`` URL if it has one, else to every
webhook its owner registered; every delivery to a user is signed with that user's secret
(``POST /v1/webhook-secret``, shown once). The results service makes the deliveries.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

import structlog

from shared.errors import Conflict, Invalid, Violation
from shared.models import Delivery, Webhook, WebhookSecret, WebhookTarget, new_id, utcnow
from shared.outbound import Network, literal_host_allowed
from shared.store.jobs import JobStore
from shared.store.webhooks import WebhookStore

log = structlog.get_logger()
SECRET_PREFIX = "whsec_"
MAX_WEBHOOKS = 10
NO_SECRET = "create your signing secret first with POST /v1/webhook-secret: webhook events are signed with it"


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


async def rotate_secret(*, webhooks: WebhookStore, owner: str) -> WebhookSecret:
    """A new signing secret for ``owner``, replacing the old one at once."""
    secret = WebhookSecret(id=owner, secret=SECRET_PREFIX + secrets.token_urlsafe(32), created=utcnow())
    await webhooks.set_webhook_secret(secret)
    log.info("webhook_secret_rotated", owner=owner)
    return secret


async def register_webhook(
    *, webhooks: WebhookStore, jobs: JobStore, target: WebhookTarget, owner: str, networks: tuple[Network, ...]
) -> Webhook:
    """Register a default webhook for ``owner`` (at most ten; 409 beyond, or without a signing secret).

    Then the owner's QUEUED and RUNNING jobs are marked, so that the end of each goes to it too: a
    runner that read a job before the webhook was inserted finds that job marked at its finish, and
    one that reads after sees the webhook (``JobStore.get_job_to_run``). Marking before inserting
    would miss a job read in between.
    """
    await check_webhooks([("", target)], owner=owner, networks=networks, webhooks=webhooks)
    if len(await webhooks.owner_webhooks(owner)) >= MAX_WEBHOOKS:
        raise Conflict(f"at most {MAX_WEBHOOKS} webhooks per user; delete one first")
    webhook = Webhook(id=new_id(), owner=owner, url=target.url, progress=target.progress, created=utcnow())
    await webhooks.insert_webhook(webhook)
    await jobs.mark_receivers_added(owner)
    log.info("webhook_registered", webhook_id=webhook.id)
    return webhook


async def delete_webhook(*, webhooks: WebhookStore, webhook_id: str, owner: str | None) -> None:
    """Forget a registered webhook (NotFound unless ``owner``'s); deliveries under way go on."""
    webhook = await webhooks.get_webhook(webhook_id, owner=owner)
    await webhooks.delete_webhook(webhook.id)
    log.info("webhook_deleted", webhook_id=webhook.id)


async def deliveries_of(*, jobs: JobStore, webhooks: WebhookStore, job_id: str, owner: str | None) -> list[Delivery]:
    """The deliveries of a job's events (NotFound unless it is ``owner``'s), oldest first."""
    job = await jobs.get_job(job_id, owner=owner)
    return await webhooks.job_deliveries(job.id)
