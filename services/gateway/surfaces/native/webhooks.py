"""Webhooks: the caller's signing secret, their registered URLs, and the deliveries of a job's events."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.webhooks import delete_webhook, deliveries_of, register_webhook, rotate_secret
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from shared.models import Delivery, DeliveryAttempt, Webhook, WebhookTarget

resource = Resource("webhooks")
# A job's end, or (for receivers that asked) its progress.
Event = Literal["job.succeeded", "job.failed", "job.timed_out", "job.canceled", "job.progress"]


class NewWebhook(WebhookTarget):
    """The body of POST /v1/webhooks."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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
    pass  # a docstring would become the schema's description in the OpenAPI document


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
    event: Event
    body: str = Field(description="the exact JSON text POSTed and signed")
    state: Literal["pending", "succeeded", "failed"]
    created: str
    next_attempt: str | None = Field(description="when the next attempt is due, while pending")
    attempts: list[DeliveryAttemptOut]


class DeliveryList(Out):
    items: list[DeliveryOut]


def render_webhook(request: Request, webhook: Webhook) -> WebhookOut:
    """The public view of a registered webhook."""
    return WebhookOut(
        id=webhook.id,
        url=link(request, "webhook", webhook_id=webhook.id),
        target=webhook.url,
        progress=webhook.progress,
        owner=webhook.owner,
        created=webhook.created.isoformat(),
    )


def render_attempt(attempt: DeliveryAttempt) -> DeliveryAttemptOut:
    """One POST of a delivery."""
    return DeliveryAttemptOut(
        at=attempt.model_dump(mode="json")["at"],  # as pydantic writes it ("...Z"), as this answer always has
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
    )


def render_delivery(delivery: Delivery) -> DeliveryOut:
    """The public view of a delivery, every attempt included."""
    return DeliveryOut(
        id=delivery.id,
        job_id=delivery.job_id,
        webhook=delivery.webhook,
        url=delivery.url,
        event=cast(Event, delivery.event),  # stored as any string; the model checks it when built
        body=delivery.body,
        state=delivery.state.value,
        created=delivery.created.isoformat(),
        next_attempt=None if delivery.next_attempt is None else delivery.next_attempt.isoformat(),
        attempts=[render_attempt(attempt) for attempt in delivery.attempts],
    )


@resource.endpoint(
    "POST",
    "/webhook-secret",
    summary="Create (or replace) your webhook signing secret; it is shown in this answer only",
    answer=WebhookSecretOut,
    status=201,
)
async def new_secret(request: Request) -> WebhookSecretOut:
    """POST /v1/webhook-secret: a new signing secret, shown in this answer only (a body is ignored)."""
    secret = await rotate_secret(webhooks=deps(request).stores.webhooks, owner=principal(request).user_id)
    return WebhookSecretOut(secret=secret.secret, created=secret.created.isoformat())


@resource.endpoint(
    "POST",
    "/webhooks",
    summary="Register a URL for the terminal events of your jobs that carry no webhook of their own "
    "(409 without a signing secret, or beyond 10 webhooks; 422 for a private address)",
    answer=WebhookOut,
    status=201,
    body=NewWebhook,
    errors=(409,),
)
async def create(request: Request) -> Reply[WebhookOut]:
    """POST /v1/webhooks {url, progress?}."""
    d = deps(request)
    body = await read_model(request, NewWebhook)
    webhook = await register_webhook(
        webhooks=d.stores.webhooks,
        jobs=d.stores.jobs,
        target=body,
        owner=principal(request).user_id,
        networks=d.settings.allowed_networks(),
    )
    rendered = render_webhook(request, webhook)
    return Reply(rendered, headers={"Location": rendered.url})


@resource.endpoint(
    "GET",
    "/webhooks",
    summary="The caller's webhooks (an admin's: everyone's), newest first",
    answer=WebhookPage,
    query=PAGED,
)
async def list_webhooks(request: Request) -> WebhookPage:
    """GET /v1/webhooks: the caller's webhooks (an admin's: everyone's)."""
    wanted = page_request(request)
    page = await deps(request).stores.webhooks.list_webhooks(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return paged(request, page, lambda webhook: render_webhook(request, webhook), WebhookPage)


@resource.endpoint("GET", "/webhooks/{webhook_id}", name="webhook", summary="A registered webhook", answer=WebhookOut)
async def describe(request: Request) -> WebhookOut:
    """GET /v1/webhooks/{webhook_id}."""
    webhooks = deps(request).stores.webhooks
    webhook = await webhooks.get_webhook(request.path_params["webhook_id"], owner=principal(request).owner_filter)
    return render_webhook(request, webhook)


@resource.endpoint(
    "DELETE",
    "/webhooks/{webhook_id}",
    summary="Delete a webhook: no new deliveries go to it; those under way go on",
    answer=None,
    status=204,
)
async def remove(request: Request) -> Response:
    """DELETE /v1/webhooks/{webhook_id}: no new deliveries go to it; those under way go on."""
    await delete_webhook(
        webhooks=deps(request).stores.webhooks,
        webhook_id=request.path_params["webhook_id"],
        owner=principal(request).owner_filter,
    )
    return Response(status_code=204)


@resource.endpoint(
    "GET",
    "/jobs/{job_id}/deliveries",
    name="job_deliveries",
    summary="The webhook deliveries of the job's events, oldest first, each with every attempt",
    answer=DeliveryList,
)
async def job_deliveries(request: Request) -> DeliveryList:
    """GET /v1/jobs/{job_id}/deliveries: every delivery of the job's events, with its attempts."""
    stores = deps(request).stores
    deliveries = await deliveries_of(
        jobs=stores.jobs,
        webhooks=stores.webhooks,
        job_id=request.path_params["job_id"],
        owner=principal(request).owner_filter,
    )
    return DeliveryList(items=[render_delivery(delivery) for delivery in deliveries])
