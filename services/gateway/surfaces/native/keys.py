"""API keys: created (the secret shown once), listed, described, revoked."""

from __future__ import annotations

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.accounts import create_key
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from shared.models import ApiKey

log = structlog.get_logger()
resource = Resource("keys")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class KeyOut(Out):
    id: str
    url: str
    name: str
    owner: str
    created: str
    revoked: str | None


class KeyCreated(KeyOut):
    secret: str = Field(description="qk_<id>.<secret>: shown in this answer only")


class KeyPage(PageOut[KeyOut]):
    pass  # a docstring would become the schema's description in the OpenAPI document


def render_key(request: Request, key: ApiKey) -> KeyOut:
    """The public view of an API key (never its secret)."""
    return KeyOut(
        id=key.id,
        url=link(request, "key", key_id=key.id),
        name=key.name,
        owner=key.owner,
        created=key.created.isoformat(),
        revoked=None if key.revoked is None else key.revoked.isoformat(),
    )


@resource.endpoint(
    "POST", "/keys", summary="Create an API key; its secret is shown once", answer=KeyCreated, status=201, body=NewKey
)
async def add_key(request: Request) -> Reply[KeyCreated]:
    """POST /v1/keys {name}: the secret is in this answer only."""
    body = await read_model(request, NewKey)
    key, secret = await create_key(
        accounts=deps(request).stores.accounts, owner=principal(request).user_id, name=body.name
    )
    created = KeyCreated(**render_key(request, key).model_dump(), secret=secret)
    return Reply(created, headers={"Location": created.url})


@resource.endpoint("GET", "/keys", summary="The caller's API keys", answer=KeyPage, query=PAGED)
async def list_keys(request: Request) -> KeyPage:
    """GET /v1/keys: the caller's keys (admins: everyone's), without secrets."""
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_keys(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return paged(request, page, lambda key: render_key(request, key), KeyPage)


@resource.endpoint("GET", "/keys/{key_id}", name="key", summary="An API key", answer=KeyOut)
async def describe_key(request: Request) -> KeyOut:
    """GET /v1/keys/{key_id}."""
    key = await deps(request).stores.accounts.get_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    return render_key(request, key)


@resource.endpoint("DELETE", "/keys/{key_id}", summary="Revoke an API key", answer=KeyOut)
async def revoke_key(request: Request) -> KeyOut:
    """DELETE /v1/keys/{key_id}: the key stops working at once."""
    key = await deps(request).stores.accounts.revoke_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    log.info("api_key_revoked", key_id=key.id)
    return render_key(request, key)
