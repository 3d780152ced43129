"""The native API: ``/v1`` as a surface of its own, with /healthz, /readyz, /openapi.json and /docs at the root."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from services.gateway.plumbing import openapi
from services.gateway.plumbing.endpoints import Endpoint
from services.gateway.plumbing.openapi import Mounted, build_document, document_routes
from services.gateway.plumbing.problems import Problem, app_error, http_error, render
from services.gateway.plumbing.surface import mount
from services.gateway.surfaces.native import (
    apps,
    auth,
    batches,
    cluster,
    credentials,
    datasets,
    events,
    files,
    health,
    job_actions,
    job_results,
    jobs,
    keys,
    queues,
    uploads,
    users,
    webhooks,
)
from shared.errors import AppError

INFO = {"title": "quern", "version": "1", "description": "A job service for scientific computing."}
ROOT = (health,)
V1 = (
    auth,
    credentials,
    users,
    keys,
    files,
    uploads,
    datasets,
    apps,
    jobs,
    batches,
    job_actions,
    job_results,
    events,
    queues,
    webhooks,
    cluster,
)


def mounted() -> list[Mounted]:
    """The native API's endpoints: those at the root, and those under /v1."""
    return [
        ("", [endpoint for module in ROOT for endpoint in module.resource.endpoints]),
        ("/v1", [endpoint for module in V1 for endpoint in module.resource.endpoints]),
    ]


def operations() -> dict[tuple[str, str], Endpoint]:
    """Every endpoint of the native API by (method, path), as its OpenAPI document lists them."""
    return openapi.operations(mounted())


def routes() -> list[BaseRoute]:
    """Every route of the native API, its OpenAPI document built from the same declarations."""
    (_, root), (_, v1) = mounted()
    document = build_document(mounted(), info=INFO, problem=Problem)
    api = mount("/v1", v1, handlers={AppError: app_error, HTTPException: http_error}, refuse=render)
    return [*(endpoint.route() for endpoint in root), api, *document_routes(document)]
