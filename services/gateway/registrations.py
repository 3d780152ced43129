"""Changing the app registry: the app directory at start, and admins through the API.

Every version of every app is kept in Mongo, and a version never changes once registered: a
job records its app's version and the runner reads exactly that definition. So a definition
whose name and version are registered already is refused (409 through the API); from the app
directory it is skipped with a warning, the registered one kept, unless the two are equal.
"""

from __future__ import annotations

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.apps import describe_version, render_app
from services.gateway.auth import principal
from services.gateway.bodies import parse_model, read_body
from services.gateway.state import deps
from services.gateway.users import require_admin
from shared.apps import AppSource, AppSpec, RegisteredApp, canonical, version_id
from shared.errors import Conflict, Invalid, NotFound, Violation
from shared.models import utcnow
from shared.store.apps import AppStore

log = structlog.get_logger()
MAX_SPEC_BYTES = 256 * 1024
MAX_TOGGLE_BYTES = 4096
DIRECTORY = "app-directory"  # registered_by of definitions read from APPS_DIR


class AppToggle(BaseModel):
    """The optional body of POST /v1/apps/{name}/disable and /enable: one version, or (without it) all."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(default=None, min_length=1, max_length=64)


async def register(*, apps: AppStore, spec: AppSpec, source: AppSource, by: str) -> RegisteredApp:
    """Record a version of an app; Conflict if that version is registered already."""
    app = RegisteredApp(
        id=version_id(spec.name, spec.version),
        name=spec.name,
        version=spec.version,
        spec=spec,
        source=source,
        registered=utcnow(),
        registered_by=by,
    )
    try:
        await apps.insert_app(app)
    except Conflict:
        raise Conflict(f"app {spec.name} version {spec.version} is registered already; versions never change") from None
    log.info("app_registered", app=spec.name, app_version=spec.version, source=source, by=by)
    return app


async def register_app(*, apps: AppStore, spec: AppSpec, by: str) -> RegisteredApp:
    """Register a new app through the API; Conflict if one of that name exists."""
    if await apps.current_app(spec.name) is not None:
        raise Conflict(f"app {spec.name} exists; register a new version at /v1/apps/{spec.name}/versions")
    return await register(apps=apps, spec=spec, source="api", by=by)


async def register_version(*, apps: AppStore, name: str, spec: AppSpec, by: str) -> RegisteredApp:
    """Register a new version of app ``name`` through the API; NotFound if there is no such app."""
    if spec.name != name:
        raise Invalid(
            f"this definition is of app {spec.name!r}, not {name!r}", [Violation("/name", f"must be {name!r}")]
        )
    if await apps.current_app(name) is None:
        raise NotFound(f"no app {name!r}")
    return await register(apps=apps, spec=spec, source="api", by=by)


async def register_directory(*, apps: AppStore, directory: dict[str, AppSpec]) -> None:
    """Register the app directory's definitions; a version registered already with another definition is skipped."""
    for spec in directory.values():
        try:
            await register(apps=apps, spec=spec, source="directory", by=DIRECTORY)
        except Conflict:
            held = await apps.get_app(spec.name, spec.version)
            if canonical(held.spec) != canonical(spec):
                log.warning(
                    "app_directory_version_differs",
                    app=spec.name,
                    app_version=spec.version,
                    registered_from=held.source,
                    detail="the registered definition is kept; give the changed one a new version",
                )


async def set_disabled(*, apps: AppStore, name: str, version: str | None, by: str | None) -> RegisteredApp:
    """Disable (``by`` an admin) or enable (``by`` None) one version of an app, or all; answers the current one."""
    if version is None:
        if await apps.current_app(name) is None:
            raise NotFound(f"no app {name!r}")
    else:
        await apps.get_app(name, version)
    await apps.set_app_disabled(name, version, by=by)
    log.info("app_disabled" if by else "app_enabled", app=name, app_version=version, by=by)
    return await describe_version(name, version, apps=apps)


async def _read_spec(request: Request) -> AppSpec:
    require_admin(principal(request))
    return parse_model(await read_body(request, MAX_SPEC_BYTES), AppSpec)


def _created(request: Request, app: RegisteredApp) -> Response:
    body = render_app(request, app, full=True)
    location = str(request.url_for("app", name=app.name).include_query_params(version=app.version))
    return JSONResponse(body, status_code=201, headers={"Location": location})


async def add_app(request: Request) -> Response:
    """POST /v1/apps (admin): register a new app from its definition."""
    spec = await _read_spec(request)
    app = await register_app(apps=deps(request).stores.apps, spec=spec, by=principal(request).username)
    return _created(request, app)


async def add_version(request: Request) -> Response:
    """POST /v1/apps/{name}/versions (admin): register a new version of an existing app."""
    spec = await _read_spec(request)
    app = await register_version(
        apps=deps(request).stores.apps, name=request.path_params["name"], spec=spec, by=principal(request).username
    )
    return _created(request, app)


async def _toggle(request: Request, *, disable: bool) -> Response:
    who = principal(request)
    require_admin(who)
    raw = await read_body(request, MAX_TOGGLE_BYTES)
    wanted = parse_model(raw, AppToggle) if raw.strip() else AppToggle()
    app = await set_disabled(
        apps=deps(request).stores.apps,
        name=request.path_params["name"],
        version=wanted.version,
        by=who.username if disable else None,
    )
    return JSONResponse(render_app(request, app, full=True))


async def disable_app(request: Request) -> Response:
    """POST /v1/apps/{name}/disable (admin): no new job may use the app (or that version); running jobs go on."""
    return await _toggle(request, disable=True)


async def enable_app(request: Request) -> Response:
    """POST /v1/apps/{name}/enable (admin): the app (or that version) takes new jobs again."""
    return await _toggle(request, disable=False)
