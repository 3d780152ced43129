"""Logging in (a bearer token for a username and password) and who the caller is."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.accounts import log_in
from services.gateway.domain.quotas import Quotas, Usage, usage_of
from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.auth import client_address, principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.native.users import UserOut, render_user

resource = Resource("auth")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=1024)


class Token(Out):
    access_token: str
    token_type: Literal["bearer"]
    expires_at: str


@resource.endpoint(
    "POST",
    "/auth/login",
    summary="Exchange username and password for a bearer token",
    answer=Token,
    body=Login,
    errors=(401, 429, 503),
    public=True,
)
async def login(request: Request) -> Token:
    """POST /v1/auth/login {username, password} -> a bearer token and its expiry."""
    d = deps(request)
    body = await read_model(request, Login)
    issued = await log_in(
        accounts=d.stores.accounts,
        guard=d.logins,
        address=client_address(request),
        username=body.username,
        password=body.password.get_secret_value(),
        secret=d.settings.auth_secret.get_secret_value(),
        ttl_seconds=d.settings.token_ttl_seconds,
    )
    return Token(access_token=issued.token, token_type="bearer", expires_at=issued.expires.isoformat())


class QuotaUse(Out):
    used: int | None = Field(description="held now; null for a quota on each request")
    quota: int | None = Field(description="the most allowed; null: no quota")


class UsageOut(Out):
    queued_jobs: QuotaUse
    stored_bytes: QuotaUse = Field(description="the bytes of the caller's files and datasets")
    pending_uploads: QuotaUse
    event_streams: QuotaUse = Field(description="open on the gateway that answered (counted per gateway)")
    batch_jobs: QuotaUse = Field(description="jobs in one batch")


class MeOut(UserOut):
    usage: UsageOut = Field(description="what the caller holds against each of their quotas")


def render_usage(usage: Usage, quotas: Quotas) -> UsageOut:
    """Each quota beside what is held of it."""

    def use(used: int | None, quota: int) -> QuotaUse:
        return QuotaUse(used=used, quota=quota or None)

    return UsageOut(
        queued_jobs=use(usage.queued_jobs, quotas.queued_jobs),
        stored_bytes=use(usage.stored_bytes, quotas.stored_bytes),
        pending_uploads=use(usage.pending_uploads, quotas.pending_uploads),
        event_streams=use(usage.event_streams, quotas.event_streams),
        batch_jobs=use(None, quotas.batch_jobs),
    )


@resource.endpoint("GET", "/me", summary="The caller, and their usage against their quotas", answer=MeOut)
async def me(request: Request) -> MeOut:
    """GET /v1/me: the caller, and what they hold against each quota."""
    d = deps(request)
    user = await d.stores.accounts.get_user(principal(request).user_id)
    stores = d.stores
    usage = await usage_of(user.id, jobs=stores.jobs, files=stores.files, usage=stores.usage, streams=d.streams)
    shown = render_user(request, user)
    return MeOut(**shown.model_dump(), usage=render_usage(usage, Quotas.of(user, d.settings)))
