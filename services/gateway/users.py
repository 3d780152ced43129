"""Users, logins and API keys: who may call quern, and how."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import Principal, hash_password, issue_token, new_api_key, password_matches, principal
from services.gateway.bodies import read_model
from services.gateway.links import link
from services.gateway.pages import page_request, page_response
from services.gateway.state import deps
from shared.errors import BadCredentials, Conflict, Duplicate, Forbidden, NotFound
from shared.models import ApiKey, Role, User, new_id, utcnow
from shared.settings import USERNAME
from shared.store.accounts import AccountStore

log = structlog.get_logger()


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=1024)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: SecretStr = Field(min_length=12, max_length=1024)
    role: Role = Role.USER


class UserChanges(BaseModel):
    """The body of PATCH /v1/users/{id} (admin)."""

    model_config = ConfigDict(extra="forbid")
    max_running: int | None = Field(
        ge=0, le=100_000, description="jobs running or dispatched at once (0: none start); null: USER_MAX_RUNNING"
    )


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


def require_admin(who: Principal) -> None:
    """Forbidden unless the caller is an admin."""
    if not who.is_admin:
        raise Forbidden()


async def create_user(*, accounts: AccountStore, username: str, password: str, role: Role) -> User:
    """Add a user; Conflict if the name is taken."""
    user = User(id=new_id(), username=username, password_hash=hash_password(password), role=role, created=utcnow())
    try:
        await accounts.insert_user(user)
    except Duplicate:
        raise Duplicate(f"the username {username!r} is taken") from None
    log.info("user_created", user_id=user.id, username=username, role=role.value)
    return user


async def ensure_admin(*, accounts: AccountStore, username: str, password: str) -> None:
    """Create the configured first admin unless a user of that name exists (its password is left alone)."""
    if await accounts.find_user(username) is None:
        try:
            await create_user(accounts=accounts, username=username, password=password, role=Role.ADMIN)
        except Duplicate:
            pass  # another gateway replica created it first


def render_user(request: Request, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "url": link(request, "user", user_id=user.id),
        "username": user.username,
        "role": user.role.value,
        "disabled": user.disabled,
        "max_running": user.max_running,
        "created": user.created.isoformat(),
    }


def render_key(request: Request, key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "url": link(request, "key", key_id=key.id),
        "name": key.name,
        "owner": key.owner,
        "created": key.created.isoformat(),
        "revoked": None if key.revoked is None else key.revoked.isoformat(),
    }


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


async def me(request: Request) -> Response:
    """GET /v1/me: the caller."""
    return JSONResponse(render_user(request, await deps(request).stores.accounts.get_user(principal(request).user_id)))


async def add_user(request: Request) -> Response:
    """POST /v1/users (admin)."""
    require_admin(principal(request))
    body = await read_model(request, NewUser)
    user = await create_user(
        accounts=deps(request).stores.accounts,
        username=body.username,
        password=body.password.get_secret_value(),
        role=body.role,
    )
    rendered = render_user(request, user)
    return JSONResponse(rendered, status_code=201, headers={"Location": rendered["url"]})


async def list_users(request: Request) -> Response:
    """GET /v1/users (admin)."""
    require_admin(principal(request))
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_users(limit=wanted.limit, after=wanted.after)
    return page_response(request, page, lambda user: render_user(request, user))


async def describe_user(request: Request) -> Response:
    """GET /v1/users/{user_id}: admins see anyone, users themselves only."""
    who, user_id = principal(request), request.path_params["user_id"]
    if not who.is_admin and user_id != who.user_id:
        raise NotFound(f"no user {user_id}")
    return JSONResponse(render_user(request, await deps(request).stores.accounts.get_user(user_id)))


async def disable_user(request: Request) -> Response:
    """DELETE /v1/users/{user_id} (admin): the account is disabled, its resources kept."""
    who, user_id = principal(request), request.path_params["user_id"]
    if not who.is_admin and user_id != who.user_id:
        raise NotFound(f"no user {user_id}")  # someone else's account: as if it did not exist
    require_admin(who)
    if user_id == who.user_id:
        raise Conflict("an admin cannot disable their own account")
    user = await deps(request).stores.accounts.set_user_disabled(user_id, True)
    log.info("user_disabled", user_id=user.id)
    return JSONResponse(render_user(request, user))


async def change_user(request: Request) -> Response:
    """PATCH /v1/users/{user_id} (admin): the user's own concurrency limit."""
    who, user_id = principal(request), request.path_params["user_id"]
    if not who.is_admin and user_id != who.user_id:
        raise NotFound(f"no user {user_id}")
    require_admin(who)
    changes = await read_model(request, UserChanges)
    user = await deps(request).stores.accounts.set_user_limit(user_id, changes.max_running)
    log.info("user_limit_set", user_id=user.id, max_running=user.max_running)
    deps(request).dispatcher.wake()
    return JSONResponse(render_user(request, user))


async def add_key(request: Request) -> Response:
    """POST /v1/keys {name}: the secret is in this answer only."""
    who = principal(request)
    body = await read_model(request, NewKey)
    key, secret = new_api_key(who.user_id, body.name)
    await deps(request).stores.accounts.insert_key(key)
    log.info("api_key_created", key_id=key.id)
    rendered = render_key(request, key) | {"secret": secret}
    return JSONResponse(rendered, status_code=201, headers={"Location": rendered["url"]})


async def list_keys(request: Request) -> Response:
    """GET /v1/keys: the caller's keys (admins: everyone's), without secrets."""
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_keys(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return page_response(request, page, lambda key: render_key(request, key))


async def describe_key(request: Request) -> Response:
    """GET /v1/keys/{key_id}."""
    key = await deps(request).stores.accounts.get_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    return JSONResponse(render_key(request, key))


async def revoke_key(request: Request) -> Response:
    """DELETE /v1/keys/{key_id}: the key stops working at once."""
    key = await deps(request).stores.accounts.revoke_key(
        request.path_params["key_id"], owner=principal(request).owner_filter
    )
    log.info("api_key_revoked", key_id=key.id)
    return JSONResponse(render_key(request, key))
