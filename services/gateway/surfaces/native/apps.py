"""The app registry: what can run, with which parameters, inputs and versions; admins register and toggle apps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from services.gateway.deps import deps
from services.gateway.domain.registry import (
    describe_version,
    listed_apps,
    register_app,
    register_version,
    set_disabled,
    versions_of,
)
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal, require_admin
from services.gateway.plumbing.bodies import parse_model, read_body
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.links import link
from shared.apps import AppSpec, RegisteredApp

resource = Resource("apps")
MAX_SPEC_BYTES = 256 * 1024
MAX_TOGGLE_BYTES = 4096


class AppToggle(BaseModel):
    """The optional body of POST /v1/apps/{name}/disable and /enable: one version, or (without it) all."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(default=None, min_length=1, max_length=64)


class AppSummary(Out):
    name: str
    url: str
    version: str
    description: str
    disabled: bool = Field(description="This version takes no new jobs (for an app: none of its versions does)")
    source: Literal["directory", "api"] = Field(description="Registered from the app directory or through the API")
    registered: str
    registered_by: str


class AppOut(AppSummary):
    parameters: dict[str, Any] = Field(description="JSON Schema of the parameters")
    inputs: dict[str, dict[str, Any]]
    outputs: list[str]
    timeout: dict[str, int]
    limits: dict[str, int | None]
    command: list[str]
    driver: Literal["local", "docker"] = Field(description="How runners start the app: a local process or a container")
    image: str | None = Field(description="The container image (docker apps)")
    example: dict[str, Any] | None
    disabled_at: str | None
    disabled_by: str | None


class AppList(Out):
    items: list[AppSummary]


def version_link(request: Request, app: RegisteredApp) -> str:
    """The URL of exactly this version of the app."""
    return str(request.url_for("app", name=app.name).include_query_params(version=app.version))


def render_summary(request: Request, app: RegisteredApp, *, url: str | None = None) -> AppSummary:
    """One version of an app, as lists show it; ``url`` instead of the app's own (current version) URL."""
    spec = app.spec
    return AppSummary(
        name=spec.name,
        url=link(request, "app", name=spec.name) if url is None else url,
        version=spec.version,
        description=spec.description,
        disabled=app.disabled is not None,
        source=app.source,
        registered=app.registered.isoformat(),
        registered_by=app.registered_by,
    )


def render_app(request: Request, app: RegisteredApp) -> AppOut:
    """The full description of one version of an app."""
    spec = app.spec
    return AppOut(
        **render_summary(request, app).model_dump(),
        parameters=spec.parameters,
        inputs={slot: s.model_dump() for slot, s in spec.inputs.items()},
        outputs=spec.outputs,
        timeout=spec.timeout.model_dump(),
        limits=spec.limits.model_dump(),
        command=spec.command,
        driver=spec.driver,
        image=spec.image,
        example=None if spec.example is None else spec.example.model_dump(),
        disabled_at=None if app.disabled is None else app.disabled.isoformat(),
        disabled_by=app.disabled_by,
    )


async def _read_spec(request: Request) -> AppSpec:
    require_admin(principal(request))
    return parse_model(await read_body(request, MAX_SPEC_BYTES), AppSpec)


def _created(request: Request, app: RegisteredApp) -> Reply[AppOut]:
    return Reply(render_app(request, app), headers={"Location": version_link(request, app)})


@resource.endpoint(
    "POST",
    "/apps",
    summary="Register a new app from its definition (admin; 409 if an app of that name exists)",
    answer=AppOut,
    status=201,
    body=AppSpec,
    errors=(403, 409),
)
async def add_app(request: Request) -> Reply[AppOut]:
    """POST /v1/apps (admin): register a new app from its definition."""
    spec = await _read_spec(request)
    app = await register_app(apps=deps(request).stores.apps, spec=spec, by=principal(request).username)
    return _created(request, app)


@resource.endpoint(
    "POST",
    "/apps/{name}/versions",
    summary="Register a new version of an app (admin); new jobs use it from now on (409 if that version exists)",
    answer=AppOut,
    status=201,
    body=AppSpec,
    errors=(403, 409),
)
async def add_version(request: Request) -> Reply[AppOut]:
    """POST /v1/apps/{name}/versions (admin): register a new version of an existing app."""
    spec = await _read_spec(request)
    app = await register_version(
        apps=deps(request).stores.apps, name=request.path_params["name"], spec=spec, by=principal(request).username
    )
    return _created(request, app)


async def _toggle(request: Request, *, disable: bool) -> AppOut:
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
    return render_app(request, app)


@resource.endpoint(
    "POST",
    "/apps/{name}/disable",
    summary="Disable an app, or one version of it (admin): no new job may use it; queued and running jobs go on",
    answer=AppOut,
    body=AppToggle,
    body_optional=True,
    errors=(403,),
)
async def disable_app(request: Request) -> AppOut:
    """POST /v1/apps/{name}/disable (admin): no new job may use the app (or that version); running jobs go on."""
    return await _toggle(request, disable=True)


@resource.endpoint(
    "POST",
    "/apps/{name}/enable",
    summary="Enable an app, or one version of it, again (admin)",
    answer=AppOut,
    body=AppToggle,
    body_optional=True,
    errors=(403,),
)
async def enable_app(request: Request) -> AppOut:
    """POST /v1/apps/{name}/enable (admin): the app (or that version) takes new jobs again."""
    return await _toggle(request, disable=False)


@resource.endpoint(
    "GET",
    "/apps",
    summary="The apps that can run, each in its current version (admins also see disabled apps)",
    answer=AppList,
)
async def list_apps(request: Request) -> AppList:
    """GET /v1/apps: every app in its current version; a disabled app only for admins."""
    apps = await listed_apps(apps=deps(request).stores.apps, with_disabled=principal(request).is_admin)
    return AppList(items=[render_summary(request, app) for app in apps])


@resource.endpoint(
    "GET",
    "/apps/{name}",
    name="app",
    summary="An app: parameter schema, inputs, outputs, limits; its latest enabled version unless `version` is given",
    answer=AppOut,
    query=(Param("version", "This version instead of the current one"),),
)
async def describe_app(request: Request) -> AppOut:
    """GET /v1/apps/{name}[?version=V]: the parameter schema, input slots, outputs and limits."""
    app = await describe_version(
        request.path_params["name"], request.query_params.get("version") or None, apps=deps(request).stores.apps
    )
    return render_app(request, app)


@resource.endpoint("GET", "/apps/{name}/versions", summary="Every version of an app, newest first", answer=AppList)
async def list_versions(request: Request) -> AppList:
    """GET /v1/apps/{name}/versions: every version, newest first, each marked disabled or not."""
    versions = await versions_of(request.path_params["name"], apps=deps(request).stores.apps)
    return AppList(items=[render_summary(request, app, url=version_link(request, app)) for app in versions])
