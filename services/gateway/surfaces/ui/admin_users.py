"""The users page (admins only): list, create with a role, set a user's limit, disable and enable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.accounts import check_may_manage, create_user, disable_user, enable_user, limit_user
from services.gateway.plumbing.auth import authenticator, principal, require_admin
from services.gateway.surfaces.ui.templates import page
from shared.errors import Conflict, Invalid
from shared.models import Role
from shared.settings import USERNAME

USERS_SHOWN = 500
MAX_RUNNING = 100_000


class UserForm(BaseModel):
    """The new-user form, held to the native API's rules for a new user."""

    model_config = ConfigDict(extra="ignore")
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=12, max_length=1024)
    role: Role = Role.USER


async def users_page(
    request: Request, *, errors: list[str] | None = None, posted: dict[str, str] | None = None, status: int = 200
) -> Response:
    """The users, newest first, with the new-user form (showing what was posted and what is wrong)."""
    require_admin(principal(request))
    found = await deps(request).stores.accounts.list_users(limit=USERS_SHOWN, after=None)
    posted = posted or {}
    return page(
        request, "users.html", status=status, users=found.items, roles=list(Role), errors=errors or [], posted=posted
    )


async def list_users(request: Request) -> Response:
    """GET /ui/admin/users."""
    return await users_page(request)


async def add_user(request: Request) -> Response:
    """POST /ui/admin/users: the users page with the new user, or the form again with what is wrong."""
    require_admin(principal(request))
    form = await request.form()
    posted = {name: str(form.get(name, "")) for name in ("username", "role")}
    try:
        wanted = UserForm.model_validate({name: str(value) for name, value in form.items()})
    except ValidationError as exc:
        errors = [f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return await users_page(request, errors=errors, posted=posted, status=422)
    try:
        d = deps(request)
        await create_user(
            accounts=d.stores.accounts,
            hashing=d.logins.hashing,
            username=wanted.username,
            password=wanted.password,
            role=wanted.role,
        )
    except Conflict as exc:  # the name is taken
        return await users_page(request, errors=[exc.detail], posted=posted, status=409)
    return RedirectResponse(request.url_for("ui:admin_users").path, status_code=303)


def to_users(request: Request) -> Response:
    """Back to the users page (303: the browser follows with a GET)."""
    return RedirectResponse(request.url_for("ui:admin_users").path, status_code=303)


async def set_limit(request: Request) -> Response:
    """POST /ui/admin/users/{user_id}/limit: the user's own limit of jobs at once (empty: the deployment's)."""
    who, d, user_id = principal(request), deps(request), request.path_params["user_id"]
    check_may_manage(user_id, who.caller)
    raw = str((await request.form()).get("max_running", "")).strip()
    if raw and not (raw.isdigit() and int(raw) <= MAX_RUNNING):
        raise Invalid(f"the limit must be a whole number from 0 to {MAX_RUNNING}, or empty for the deployment's")
    await limit_user(accounts=d.stores.accounts, wake=d.wake, user_id=user_id, max_running=int(raw) if raw else None)
    return to_users(request)


async def disable(request: Request) -> Response:
    """POST /ui/admin/users/{user_id}/disable: the account stops working; its resources are kept."""
    caller, user_id = principal(request).caller, request.path_params["user_id"]
    await disable_user(accounts=deps(request).stores.accounts, user_id=user_id, caller=caller)
    authenticator(request).forget(user_id)
    return to_users(request)


async def enable(request: Request) -> Response:
    """POST /ui/admin/users/{user_id}/enable."""
    caller, user_id = principal(request).caller, request.path_params["user_id"]
    await enable_user(accounts=deps(request).stores.accounts, user_id=user_id, caller=caller)
    return to_users(request)
