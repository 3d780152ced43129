"""The TES surface: its endpoints mounted at /ga4gh/tes/v1, with its errors and its OpenAPI document (both public)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from services.gateway.plumbing.endpoints import Endpoint, Resource
from services.gateway.plumbing.problems import http_error
from services.gateway.plumbing.surface import mount
from services.gateway.surfaces.tes import service_info, tasks
from services.gateway.surfaces.tes.document import build_document
from services.gateway.surfaces.tes.errors import render_tes, tes_error
from shared.errors import AppError

PREFIX = "/ga4gh/tes/v1"


def endpoints() -> list[Endpoint]:
    """Every TES endpoint, /openapi.json included."""
    document: dict[str, Any] = build_document()  # read once, when the app is made

    published = Resource("TaskService")

    @published.endpoint("GET", "/openapi.json", summary="This OpenAPI document", answer=None, public=True)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    return [*service_info.resource.endpoints, *tasks.resource.endpoints, *published.endpoints]


def routes() -> list[BaseRoute]:
    """The TES mount."""
    handlers = {AppError: tes_error, HTTPException: http_error}
    return [mount(PREFIX, endpoints(), handlers=handlers, refuse=render_tes)]
