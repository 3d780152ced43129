"""Logging in (a bearer token for a username and password) and who the caller is."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.accounts import log_in
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


@resource.endpoint("GET", "/me", summary="The caller", answer=UserOut)
async def me(request: Request) -> UserOut:
    """GET /v1/me: the caller."""
    return render_user(request, await deps(request).stores.accounts.get_user(principal(request).user_id))
