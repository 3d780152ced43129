"""Users (admins manage them; a user sees only themselves)."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.accounts import create_user
from services.gateway.plumbing.auth import principal, require_admin
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.surfaces.native.schemas import UserOut, UserPage
from shared.errors import Conflict, NotFound
from shared.models import Role, User
from shared.settings import USERNAME

log = structlog.get_logger()

resource = Resource("users")


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


@resource.endpoint(
    "POST", "/users", summary="Create a user (admin)", answer=UserOut, status=201, body=NewUser, errors=(403, 409)
)
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


@resource.endpoint("GET", "/users", summary="List users (admin)", answer=UserPage, query=PAGED, errors=(403,))
async def list_users(request: Request) -> Response:
    """GET /v1/users (admin)."""
    require_admin(principal(request))
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_users(limit=wanted.limit, after=wanted.after)
    return page_response(request, page, lambda user: render_user(request, user))


@resource.endpoint(
    "GET", "/users/{user_id}", name="user", summary="A user (admins: anyone; users: themselves)", answer=UserOut
)
async def describe_user(request: Request) -> Response:
    """GET /v1/users/{user_id}: admins see anyone, users themselves only."""
    who, user_id = principal(request), request.path_params["user_id"]
    if not who.is_admin and user_id != who.user_id:
        raise NotFound(f"no user {user_id}")
    return JSONResponse(render_user(request, await deps(request).stores.accounts.get_user(user_id)))


@resource.endpoint("DELETE", "/users/{user_id}", summary="Disable a user (admin)", answer=UserOut, errors=(403, 409))
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


@resource.endpoint(
    "PATCH",
    "/users/{user_id}",
    summary="Set a user's own limit of jobs running or dispatched at once "
    "(admin; null: the deployment's USER_MAX_RUNNING)",
    answer=UserOut,
    body=UserChanges,
    errors=(403,),
)
async def change_user(request: Request) -> Response:
    """PATCH /v1/users/{user_id} (admin): the user's own concurrency limit."""
    who, user_id = principal(request), request.path_params["user_id"]
    if not who.is_admin and user_id != who.user_id:
        raise NotFound(f"no user {user_id}")
    require_admin(who)
    changes = await read_model(request, UserChanges)
    user = await deps(request).stores.accounts.set_user_limit(user_id, changes.max_running)
    log.info("user_limit_set", user_id=user.id, max_running=user.max_running)
    deps(request).wake()
    return JSONResponse(render_user(request, user))
