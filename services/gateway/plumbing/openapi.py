"""An API surface's OpenAPI 3.1 document, built from its endpoint declarations, and the routes that publish it.

Request schemas come from the pydantic models endpoints parse, answer schemas from the models
they answer with; the test suite runs schemathesis against the result, so every real answer is
checked against what is published here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.gateway.plumbing.docs_page import docs_routes
from services.gateway.plumbing.endpoints import EVENT_STREAM, Endpoint

ERROR_TEXT = {
    302: "Redirect to the presigned URL",
    400: "The request could not be read",
    401: "No valid credentials",
    403: "Admins only",
    404: "No such resource (or not yours)",
    409: "Not in a state that allows this (see Retry-After)",
    410: "Deleted for good: the job's retention ran out",
    413: "Too large",
    422: "Breaks the rules; every violation listed with a JSON pointer",
    429: "Too many requests, or a quota of yours reached: see the problem's type, Retry-After and GET /v1/me",
    503: "A backend did not answer (see Retry-After)",
}
# Before OpenAPI 3.2's itemSchema, a text/event-stream schema describes each event.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "description": "The event id; send it back as Last-Event-ID to resume"},
        "event": {"enum": ["state", "progress", "log", "archive"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "{id, job_id, type, at, data}",
        },
    },
}
Mounted = tuple[str, Sequence[Endpoint]]  # a mount's path prefix and the endpoints under it


def _operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _operation(method: str, path: str, op: Endpoint, refs: dict[Any, Any], problem: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ] + [
        {"name": p.name, "in": p.location, "required": False, "description": p.description, "schema": p.schema}
        for p in op.query
    ]
    answer: dict[str, Any] = {"description": op.summary}
    if op.answer is not None:
        answer["content"] = {op.media_type: {"schema": refs[(op.answer, "serialization")]}}
    elif op.media_type == EVENT_STREAM:
        answer["content"] = {EVENT_STREAM: {"schema": SSE_EVENT}}
    responses: dict[str, Any] = {str(op.status): answer}
    if op.replay:
        responses["200"] = answer | {"description": "What an earlier request with the same key created"}
    errors = set(op.errors) | ({400, 404} if params else set())
    if not op.public:
        errors |= {401, 503}
    if op.body is not None or op.upload:
        errors |= {400, 413, 422}
    if op.body is not None and not op.public:
        errors |= {404}
    for status in sorted(errors):
        responses[str(status)] = {"description": ERROR_TEXT[status]} | ({} if status == 302 else {"content": problem})
    entry: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(method, path),
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        entry["requestBody"] = {
            "required": not op.body_optional,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.upload:
        binary = {"type": "string", "format": "binary"}
        form = {"type": "object", "properties": {"file": binary}, "required": ["file"]}
        entry["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": binary}, "multipart/form-data": {"schema": form}},
        }
    if op.public:
        entry["security"] = []
    return entry


def operations(mounted: Sequence[Mounted]) -> dict[tuple[str, str], Endpoint]:
    """Every endpoint by (method, full path as OpenAPI writes it); RuntimeError if one is declared twice."""
    found: dict[tuple[str, str], Endpoint] = {}
    for prefix, endpoints in mounted:
        for op in endpoints:
            path = re.sub(r"{(\w+):\w+}", r"{\1}", prefix + op.path)  # {path:path} is {path} in OpenAPI
            if (op.method, path) in found:
                raise RuntimeError(f"{op.method} {path} is declared twice")
            found[(op.method, path)] = op
    return found


def build_document(mounted: Sequence[Mounted], *, info: dict[str, Any], problem: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints; ``problem`` is the schema of every error answer."""
    operations_ = operations(mounted)
    answers = {op.answer for op in operations_.values() if op.answer} | {problem}
    bodies = {op.body for op in operations_.values() if op.body}
    refs, definitions = models_json_schema(
        [(model, "serialization") for model in answers] + [(model, "validation") for model in bodies],
        ref_template="#/components/schemas/{model}",
    )
    problem_content = {"application/problem+json": {"schema": refs[(problem, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(operations_.items()):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, refs, problem_content)
    return {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A login token or an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def document_routes(document: dict[str, Any], *, at: str = "") -> list[Route]:
    """``{at}/openapi.json`` serving ``document``, and ``{at}/docs`` rendering it (all public)."""

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    title = document["info"]["title"] + " API"
    return [Route(f"{at}/openapi.json", openapi_json), *docs_routes(title=title, spec=f"{at}/openapi.json", at=at)]
