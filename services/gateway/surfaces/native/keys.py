"""API keys: created (the secret shown once), listed, described, revoked."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.credentials import new_api_key
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.schemas import KeyCreated, KeyOut, KeyPage
from shared.models import ApiKey

log = structlog.get_logger()

resource = Resource("keys")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


def render_key(request: Request, key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "url": link(request, "key", key_id=key.id),
        "name": key.name,
        "owner": key.owner,
        "created": key.created.isoformat(),
        "revoked": None if key.revoked is None else key.revoked.isoformat(),
    }


@resource.endpoint(
    "POST", "/keys", summary="Create an API key; its secret is shown once", answer=KeyCreated, status=201, body=NewKey
)
async def add_key(request: Request) -> Response:
    """POST /v1/keys {name}: the secret is in this answer only."""
    who = principal(request)
    body = await read_model(request, NewKey)
    key, secret = new_api_key(who.user_id, body.name)
    await deps(request).stores.accounts.insert_key(key)
    log.info("api_key_created", key_id=key.id)
    rendered = render_key(request, key) | {"secret": secret}
    return JSONResponse(rendered, status_code=201, headers={"Location": rendered["url"]})


@resource.endpoint("GET", "/keys", summary="The caller's API keys", answer=KeyPage, query=PAGED)
async def list_keys(request: Request) -> Response:
    """GET /v1/keys: the caller's keys (admins: everyone's), without secrets."""
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_keys(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return page_response(request, page, lambda key: render_key(request, key))


@resource.endpoint("GET", "/keys/{key_id}", name="key", summary="An API key", answer=KeyOut)
async def describe_key(request: Request) -> Response:
    """GET /v1/keys/{key_id}."""
    key = await deps(request).stores.accounts.get_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    return JSONResponse(render_key(request, key))


@resource.endpoint("DELETE", "/keys/{key_id}", summary="Revoke an API key", answer=KeyOut)
async def revoke_key(request: Request) -> Response:
    """DELETE /v1/keys/{key_id}: the key stops working at once."""
    key = await deps(request).stores.accounts.revoke_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    log.info("api_key_revoked", key_id=key.id)
    return JSONResponse(render_key(request, key))
