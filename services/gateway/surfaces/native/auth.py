"""Logging in (a bearer token for a username and password) and who the caller is."""

from __future__ import annotations

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.credentials import issue_token, password_matches
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.native.schemas import Token, UserOut
from services.gateway.surfaces.native.users import render_user
from shared.errors import BadCredentials

log = structlog.get_logger()

resource = Resource("auth")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=1024)


@resource.endpoint(
    "POST",
    "/auth/login",
    summary="Exchange username and password for a bearer token",
    answer=Token,
    body=Login,
    errors=(401,),
    public=True,
)
async def login(request: Request) -> Response:
    """POST /v1/auth/login {username, password} -> a bearer token and its expiry."""
    d = deps(request)
    body = await read_model(request, Login)
    user = await d.stores.accounts.find_user(body.username)
    if not password_matches(user, body.password.get_secret_value()) or user is None or user.disabled:
        log.info("login_refused", username=body.username)
        raise BadCredentials("wrong username or password")
    token, expires = issue_token(
        user, secret=d.settings.auth_secret.get_secret_value(), ttl_seconds=d.settings.token_ttl_seconds
    )
    log.info("login", user_id=user.id)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_at": expires.isoformat()})


@resource.endpoint("GET", "/me", summary="The caller", answer=UserOut)
async def me(request: Request) -> Response:
    """GET /v1/me: the caller."""
    return JSONResponse(render_user(request, await deps(request).stores.accounts.get_user(principal(request).user_id)))
