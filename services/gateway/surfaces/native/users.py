"""Users (admins manage them; a user sees only themselves)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.accounts import (
    check_may_manage,
    create_user,
    describe_user,
    disable_user,
    limit_user,
    override_quotas,
)
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import authenticator, principal, require_admin
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from shared.errors import Invalid, Violation
from shared.models import QuotaOverrides, Role, User
from shared.settings import USERNAME

resource = Resource("users")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME)
    password: SecretStr = Field(min_length=12, max_length=1024)
    role: Role = Role.USER


class UserChanges(BaseModel):
    """The body of PATCH /v1/users/{id} (admin): the fields sent change, the others stay."""

    model_config = ConfigDict(extra="forbid")
    max_running: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="jobs running or dispatched at once (0: none start); null: USER_MAX_RUNNING",
    )
    quotas: QuotaOverrides | None = Field(
        default=None,
        description="the user's own quotas, those named change (0: no quota; null: the deployment's QUOTA_*)",
    )


class UserOut(Out):
    id: str
    url: str
    username: str
    role: Role
    disabled: bool
    max_running: int | None = Field(description="the user's own limit of jobs at once; null: the deployment's")
    quotas: QuotaOverrides = Field(description="the user's own quotas; null: the deployment's (QUOTA_*)")
    created: str


class UserPage(PageOut[UserOut]):
    pass  # a docstring would become the schema's description in the OpenAPI document


def render_user(request: Request, user: User) -> UserOut:
    """A user as clients see it (never its password hash)."""
    return UserOut(
        id=user.id,
        url=link(request, "user", user_id=user.id),
        username=user.username,
        role=user.role,
        disabled=user.disabled,
        max_running=user.max_running,
        quotas=user.quotas,
        created=user.created.isoformat(),
    )


@resource.endpoint(
    "POST", "/users", summary="Create a user (admin)", answer=UserOut, status=201, body=NewUser, errors=(403, 409)
)
async def add_user(request: Request) -> Reply[UserOut]:
    """POST /v1/users (admin)."""
    require_admin(principal(request))
    body = await read_model(request, NewUser)
    d = deps(request)
    user = await create_user(
        accounts=d.stores.accounts,
        hashing=d.logins.hashing,
        username=body.username,
        password=body.password.get_secret_value(),
        role=body.role,
    )
    rendered = render_user(request, user)
    return Reply(rendered, headers={"Location": rendered.url})


@resource.endpoint("GET", "/users", summary="List users (admin)", answer=UserPage, query=PAGED, errors=(403,))
async def list_users(request: Request) -> UserPage:
    """GET /v1/users (admin)."""
    require_admin(principal(request))
    wanted = page_request(request)
    page = await deps(request).stores.accounts.list_users(limit=wanted.limit, after=wanted.after)
    return paged(request, page, lambda user: render_user(request, user), UserPage)


@resource.endpoint(
    "GET", "/users/{user_id}", name="user", summary="A user (admins: anyone; users: themselves)", answer=UserOut
)
async def describe(request: Request) -> UserOut:
    """GET /v1/users/{user_id}: admins see anyone, users themselves only."""
    user_id = request.path_params["user_id"]
    user = await describe_user(
        accounts=deps(request).stores.accounts, user_id=user_id, caller=principal(request).caller
    )
    return render_user(request, user)


@resource.endpoint("DELETE", "/users/{user_id}", summary="Disable a user (admin)", answer=UserOut, errors=(403, 409))
async def disable(request: Request) -> UserOut:
    """DELETE /v1/users/{user_id} (admin): the account is disabled, its resources kept."""
    user_id = request.path_params["user_id"]
    user = await disable_user(accounts=deps(request).stores.accounts, user_id=user_id, caller=principal(request).caller)
    authenticator(request).forget(user.id)  # refused at once here; by other replicas within AUTH_CACHE_SECONDS
    return render_user(request, user)


@resource.endpoint(
    "PATCH",
    "/users/{user_id}",
    summary="Set a user's own limit of jobs running or dispatched at once (null: the deployment's USER_MAX_RUNNING) "
    "and their own quotas (admin)",
    answer=UserOut,
    body=UserChanges,
    errors=(403,),
)
async def change(request: Request) -> UserOut:
    """PATCH /v1/users/{user_id} (admin): the user's own concurrency limit and quotas, those sent."""
    d, user_id = deps(request), request.path_params["user_id"]
    # Whether the caller may is settled before the body is read: a 404 or 403 comes before a 422.
    check_may_manage(user_id, principal(request).caller)
    changes = await read_model(request, UserChanges)
    if not changes.model_fields_set:
        raise Invalid("say what to change", [Violation("", "send max_running, quotas or both")])
    user = await d.stores.accounts.get_user(user_id)
    if changes.quotas is not None and changes.quotas.model_fields_set:
        named = {name: getattr(changes.quotas, name) for name in sorted(changes.quotas.model_fields_set)}
        user = await override_quotas(accounts=d.stores.accounts, user_id=user_id, quotas=named)
        d.authenticator.forget(user_id)
    if "max_running" in changes.model_fields_set:
        user = await limit_user(
            accounts=d.stores.accounts, wake=d.wake, user_id=user_id, max_running=changes.max_running
        )
    return render_user(request, user)
