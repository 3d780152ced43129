"""Webhooks: the caller's signing secret, their registered URLs, and the deliveries of a job's events."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.webhooks import delete_webhook, deliveries_of, register_webhook, rotate_secret
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.schemas import DeliveryList, WebhookOut, WebhookPage, WebhookSecretOut
from shared.models import Delivery, Webhook, WebhookTarget

resource = Resource("webhooks")


class NewWebhook(WebhookTarget):
    """The body of POST /v1/webhooks."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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


@resource.endpoint(
    "POST",
    "/webhook-secret",
    summary="Create (or replace) your webhook signing secret; it is shown in this answer only",
    answer=WebhookSecretOut,
    status=201,
)
async def new_secret(request: Request) -> Response:
    """POST /v1/webhook-secret: a new signing secret, shown in this answer only (a body is ignored)."""
    secret = await rotate_secret(webhooks=deps(request).stores.webhooks, owner=principal(request).user_id)
    return JSONResponse({"secret": secret.secret, "created": secret.created.isoformat()}, status_code=201)


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


@resource.endpoint(
    "GET",
    "/webhooks",
    summary="The caller's webhooks (an admin's: everyone's), newest first",
    answer=WebhookPage,
    query=PAGED,
)
async def list_webhooks(request: Request) -> Response:
    """GET /v1/webhooks: the caller's webhooks (an admin's: everyone's)."""
    wanted = page_request(request)
    page = await deps(request).stores.webhooks.list_webhooks(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return page_response(request, page, lambda webhook: render_webhook(request, webhook))


@resource.endpoint("GET", "/webhooks/{webhook_id}", name="webhook", summary="A registered webhook", answer=WebhookOut)
async def describe(request: Request) -> Response:
    """GET /v1/webhooks/{webhook_id}."""
    webhooks = deps(request).stores.webhooks
    webhook = await webhooks.get_webhook(request.path_params["webhook_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_webhook(request, webhook))


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
