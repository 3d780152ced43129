"""Taking credentials back: changing a password, an admin setting another's, and logging out everywhere.

Each ends every login token and UI session the user holds (their ``tokens_valid_after`` moves to
now); API keys are revoked one by one, at /v1/keys. A caller who changes their own password gets a
fresh token in the answer, as their old one ends with the rest.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.accounts import change_password, check_may_manage, log_out_everywhere, reset_password
from services.gateway.domain.credentials import issue_token
from services.gateway.plumbing.auth import authenticator, principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.surfaces.native.auth import Token
from services.gateway.surfaces.native.users import UserOut, render_user

resource = Resource("auth")
PASSWORD = Field(min_length=12, max_length=1024)


class PasswordChange(BaseModel):
    """The body of POST /v1/me/password."""

    model_config = ConfigDict(extra="forbid")
    current_password: SecretStr = Field(max_length=1024)
    new_password: SecretStr = PASSWORD


class PasswordReset(BaseModel):
    """The body of POST /v1/users/{id}/password (admin)."""

    model_config = ConfigDict(extra="forbid")
    password: SecretStr = PASSWORD


@resource.endpoint(
    "POST",
    "/me/password",
    summary="Change the caller's password (the current one is needed); ends every token and UI session "
    "of theirs and answers a fresh token",
    answer=Token,
    body=PasswordChange,
)
async def change(request: Request) -> Token:
    """POST /v1/me/password {current_password, new_password} -> a new bearer token."""
    d, who = deps(request), principal(request)
    body = await read_model(request, PasswordChange)
    user = await change_password(
        accounts=d.stores.accounts,
        hashing=d.logins.hashing,
        user_id=who.user_id,
        current=body.current_password.get_secret_value(),
        new=body.new_password.get_secret_value(),
    )
    authenticator(request).forget(user.id)
    token, expires = issue_token(
        user, secret=d.settings.auth_secret.get_secret_value(), ttl_seconds=d.settings.token_ttl_seconds
    )
    return Token(access_token=token, token_type="bearer", expires_at=expires.isoformat())


@resource.endpoint(
    "POST",
    "/me/logout-all",
    summary="Log out everywhere: every login token and UI session of the caller's ends (API keys do not)",
    answer=None,
    status=204,
)
async def log_out_all(request: Request) -> Response:
    """POST /v1/me/logout-all: 204; the token this came with ends too."""
    user = await log_out_everywhere(accounts=deps(request).stores.accounts, user_id=principal(request).user_id)
    authenticator(request).forget(user.id)
    return Response(status_code=204)


@resource.endpoint(
    "POST",
    "/users/{user_id}/password",
    summary="Set a user's password (admin); ends every token and UI session of theirs",
    answer=UserOut,
    body=PasswordReset,
    errors=(403, 409),
)
async def reset(request: Request) -> UserOut:
    """POST /v1/users/{user_id}/password {password} (admin)."""
    d, who, user_id = deps(request), principal(request), request.path_params["user_id"]
    # Whether the caller may is settled before the body is read: a 404 or 403 comes before a 422.
    check_may_manage(user_id, who.caller)
    body = await read_model(request, PasswordReset)
    user = await reset_password(
        accounts=d.stores.accounts,
        hashing=d.logins.hashing,
        user_id=user_id,
        password=body.password.get_secret_value(),
        caller=who.caller,
    )
    authenticator(request).forget(user.id)
    return render_user(request, user)
