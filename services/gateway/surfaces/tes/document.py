"""The TES surface's OpenAPI document: the vendored GA4GH TES 1.1 document, with what quern adds.

Paths and schemas are the spec's (spec/tes-1.1.openapi.yaml, Apache 2.0, see spec/tes-1.1.LICENSE).
quern adds its error answers (RFC 9457 problems), its security schemes (the native API's bearer
tokens and API keys; service-info needs none), and a local copy of the GA4GH service-info 1.0.0
``Service`` and ``ServiceType`` schemas the spec refers to by URL, so a client needs no network.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import yaml

SPEC = Path(__file__).parent / "spec" / "tes-1.1.openapi.yaml"
SERVICE_INFO = "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml"
_URI = {"type": "string", "format": "uri"}
# GA4GH service-info 1.0.0, components/schemas: what tesServiceInfo and tesServiceType extend.
SERVICE_SCHEMAS: dict[str, Any] = {
    "ServiceType": {
        "type": "object",
        "required": ["group", "artifact", "version"],
        "properties": {"group": {"type": "string"}, "artifact": {"type": "string"}, "version": {"type": "string"}},
    },
    "Service": {
        "type": "object",
        "required": ["id", "name", "type", "organization", "version"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"$ref": "#/components/schemas/ServiceType"},
            "description": {"type": "string"},
            "organization": {
                "type": "object",
                "required": ["name", "url"],
                "properties": {"name": {"type": "string"}, "url": _URI},
            },
            "contactUrl": _URI,
            "documentationUrl": _URI,
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "environment": {"type": "string"},
            "version": {"type": "string"},
        },
    },
}
PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; docs/problems.md lists the types",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "each rule the request broke, with a JSON pointer into it",
            "items": {
                "type": "object",
                "required": ["pointer", "detail"],
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
}
ERRORS = {
    400: "The request breaks a rule (each listed with a JSON pointer) or could not be read",
    401: "No valid credentials",
    404: "No such task (or not yours), or an input or queue that is not yours",
    413: "The body is too large",
    503: "A backend did not answer (see Retry-After)",
}
# (path, method) -> the errors it may answer besides 401 and 503, which every authenticated operation may.
OPERATION_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("/tasks", "get"): (400,),
    ("/tasks", "post"): (400, 404, 413),
    ("/tasks/{id}", "get"): (400, 404),
    ("/tasks/{id}:cancel", "post"): (404,),
}
PUBLIC = {("/service-info", "get")}


def _plain(node: Any) -> Any:
    """YAML as JSON has it (codes and times as strings), external service-info references made local."""
    if isinstance(node, dict):
        plain = {str(key): _plain(value) for key, value in node.items()}
        ref = plain.get("$ref")
        if isinstance(ref, str) and ref.startswith(SERVICE_INFO):
            plain["$ref"] = "#/components/schemas/" + ref.rsplit("/", 1)[1]
        return plain
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, date):  # YAML reads the spec's example times as timestamps
        return node.isoformat()
    return node


def vendored() -> dict[str, Any]:
    """The TES 1.1 document as published by GA4GH, as JSON (its service-info references made local)."""
    with SPEC.open(encoding="utf-8") as spec:
        loaded: dict[str, Any] = _plain(yaml.safe_load(spec))
    return loaded


def build_document() -> dict[str, Any]:
    """The document /ga4gh/tes/v1/openapi.json publishes: the spec's, with quern's errors and security."""
    document = copy.deepcopy(vendored())
    components = document["components"]
    components["schemas"] |= SERVICE_SCHEMAS | {"Problem": PROBLEM}
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "a login token, or an API key (qk_...)"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "an API key (qk_...)"},
    }
    document["security"] = [{"bearer": []}, {"apiKey": []}]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = (path, method) in PUBLIC
            statuses = set(OPERATION_ERRORS.get((path, method), ())) | (set() if public else {401, 503})
            for status in sorted(statuses):
                operation["responses"][str(status)] = {"description": ERRORS[status], "content": problem}
            if public:
                operation["security"] = []
    return document
