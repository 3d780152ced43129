"""The app registry as clients see it: what can run, with which parameters and inputs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.state import deps
from shared.apps import AppSpec
from shared.errors import NotFound


def find_app(apps: dict[str, AppSpec], name: str) -> AppSpec:
    """The app called ``name``, or NotFound."""
    try:
        return apps[name]
    except KeyError:
        raise NotFound(f"no app {name!r}") from None


def render_app(request: Request, spec: AppSpec, *, full: bool) -> dict[str, Any]:
    """The summary (for lists) or full description of an app."""
    body: dict[str, Any] = {
        "name": spec.name,
        "url": str(request.url_for("app", name=spec.name)),
        "version": spec.version,
        "description": spec.description,
    }
    if full:
        body |= {
            "parameters": spec.parameters,
            "inputs": {slot: s.model_dump() for slot, s in spec.inputs.items()},
            "outputs": spec.outputs,
            "timeout": spec.timeout.model_dump(),
            "limits": spec.limits.model_dump(),
            "command": spec.command,
            "example": None if spec.example is None else spec.example.model_dump(),
        }
    return body


async def list_apps(request: Request) -> Response:
    """GET /v1/apps."""
    apps = deps(request).apps
    return JSONResponse({"items": [render_app(request, apps[name], full=False) for name in sorted(apps)]})


async def describe_app(request: Request) -> Response:
    """GET /v1/apps/{name}: the parameter schema, input slots, outputs and limits."""
    spec = find_app(deps(request).apps, request.path_params["name"])
    return JSONResponse(render_app(request, spec, full=True))
