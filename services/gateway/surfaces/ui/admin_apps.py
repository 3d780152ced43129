"""The apps page (admins only): every app with its versions; register one from its pasted JSON definition; toggle."""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.registry import listed_apps, register_app, register_version, set_disabled, versions_of
from services.gateway.plumbing.auth import principal, require_admin
from services.gateway.surfaces.ui.sessions import MAX_FORM_BYTES
from services.gateway.surfaces.ui.templates import page
from shared.apps import AppSpec
from shared.errors import Conflict, Invalid, NotFound, TooLarge


async def apps_page(
    request: Request, *, errors: list[str] | None = None, definition: str = "", status: int = 200
) -> Response:
    """Every app (disabled ones too) with all its versions, and the register form."""
    require_admin(principal(request))
    apps = deps(request).stores.apps
    listed = await listed_apps(apps=apps, with_disabled=True)
    versions = {app.name: await versions_of(app.name, apps=apps) for app in listed}
    return page(
        request, "admin_apps.html", status=status, versions=versions, errors=errors or [], definition=definition
    )


async def list_apps(request: Request) -> Response:
    """GET /ui/admin/apps."""
    return await apps_page(request)


async def register(request: Request) -> Response:
    """POST /ui/admin/apps: a new app, or a new version of one; the form again with what is wrong."""
    who = principal(request)
    require_admin(who)
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise TooLarge("the form is too large")
    text = str((await request.form()).get("definition", ""))
    try:
        spec = AppSpec.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        return await apps_page(request, errors=[f"not JSON: {exc}"], definition=text, status=422)
    except ValidationError as exc:
        errors = [f"/{'/'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return await apps_page(request, errors=errors, definition=text, status=422)
    apps = deps(request).stores.apps
    try:
        try:
            await register_app(apps=apps, spec=spec, by=who.username)
        except Conflict:  # the app exists: this is a new version of it
            await register_version(apps=apps, name=spec.name, spec=spec, by=who.username)
    except (Conflict, NotFound, Invalid) as exc:
        return await apps_page(request, errors=[exc.detail], definition=text, status=409)
    return RedirectResponse(request.url_for("ui:admin_apps").path, status_code=303)


async def toggle(request: Request, *, disable: bool) -> Response:
    """Disable or enable one version of an app, then back to the apps page."""
    who = principal(request)
    require_admin(who)
    version = str((await request.form()).get("version", "")).strip() or None
    await set_disabled(
        apps=deps(request).stores.apps,
        name=request.path_params["app"],
        version=version,
        by=who.username if disable else None,
    )
    return RedirectResponse(request.url_for("ui:admin_apps").path, status_code=303)


async def disable(request: Request) -> Response:
    """POST /ui/admin/apps/{app}/disable: that version (or, without one, the app) takes no new jobs."""
    return await toggle(request, disable=True)


async def enable(request: Request) -> Response:
    """POST /ui/admin/apps/{app}/enable."""
    return await toggle(request, disable=False)
