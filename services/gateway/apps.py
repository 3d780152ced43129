"""The app registry as clients see it: what can run, with which parameters and inputs, in which versions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.links import link
from services.gateway.state import deps
from shared.apps import AppSpec, RegisteredApp
from shared.errors import Conflict, NotFound
from shared.store.apps import AppStore


async def find_app(name: str, *, apps: AppStore) -> AppSpec:
    """The latest enabled version of app ``name`` for a new job: NotFound if unknown, Conflict if disabled."""
    current = await apps.current_app(name)
    if current is None:
        raise NotFound(f"no app {name!r}")
    if current.disabled is not None:
        raise Conflict(f"app {name} is disabled: no new job may use it")
    return current.spec


def render_app(request: Request, app: RegisteredApp, *, full: bool) -> dict[str, Any]:
    """The summary (for lists) or full description of one version of an app."""
    spec = app.spec
    body: dict[str, Any] = {
        "name": spec.name,
        "url": link(request, "app", name=spec.name),
        "version": spec.version,
        "description": spec.description,
        "disabled": app.disabled is not None,
        "source": app.source,
        "registered": app.registered.isoformat(),
        "registered_by": app.registered_by,
    }
    if full:
        body |= {
            "parameters": spec.parameters,
            "inputs": {slot: s.model_dump() for slot, s in spec.inputs.items()},
            "outputs": spec.outputs,
            "timeout": spec.timeout.model_dump(),
            "limits": spec.limits.model_dump(),
            "command": spec.command,
            "driver": spec.driver,
            "image": spec.image,
            "example": None if spec.example is None else spec.example.model_dump(),
            "disabled_at": None if app.disabled is None else app.disabled.isoformat(),
            "disabled_by": app.disabled_by,
        }
    return body


def current_versions(versions: list[RegisteredApp]) -> list[RegisteredApp]:
    """One entry per app: its latest enabled version, else its latest; ``versions`` by name, newest first."""
    chosen: dict[str, RegisteredApp] = {}
    for app in versions:
        held = chosen.get(app.name)
        if held is None or (held.disabled is not None and app.disabled is None):
            chosen[app.name] = app
    return [chosen[name] for name in sorted(chosen)]


async def describe_version(name: str, version: str | None, *, apps: AppStore) -> RegisteredApp:
    """One version of an app (the current one unless ``version`` is given), or NotFound."""
    if version is not None:
        return await apps.get_app(name, version)
    current = await apps.current_app(name)
    if current is None:
        raise NotFound(f"no app {name!r}")
    return current


async def list_apps(request: Request) -> Response:
    """GET /v1/apps: every app in its current version; a disabled app only for admins."""
    apps = current_versions(await deps(request).stores.apps.app_versions())
    if not principal(request).is_admin:
        apps = [app for app in apps if app.disabled is None]
    return JSONResponse({"items": [render_app(request, app, full=False) for app in apps]})


async def describe_app(request: Request) -> Response:
    """GET /v1/apps/{name}[?version=V]: the parameter schema, input slots, outputs and limits."""
    app = await describe_version(
        request.path_params["name"], request.query_params.get("version") or None, apps=deps(request).stores.apps
    )
    return JSONResponse(render_app(request, app, full=True))


async def list_versions(request: Request) -> Response:
    """GET /v1/apps/{name}/versions: every version, newest first, each marked disabled or not."""
    name = request.path_params["name"]
    versions = await deps(request).stores.apps.app_versions(name)
    if not versions:
        raise NotFound(f"no app {name!r}")
    items = []
    for app in versions:
        item = render_app(request, app, full=False)
        item["url"] = str(request.url_for("app", name=name).include_query_params(version=app.version))
        items.append(item)
    return JSONResponse({"items": items})
