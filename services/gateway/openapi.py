"""The OpenAPI 3.1 document at /openapi.json and the docs page at /docs, generated from the code.

Every route the gateway serves must have an ``Operation`` here: ``build_document`` refuses to
start otherwise, so an endpoint cannot ship undocumented. Schemas come from the pydantic
models the handlers parse (requests) and from ``schemas.py`` (answers); the test suite runs
schemathesis against the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from services.gateway import schemas
from services.gateway.batches import BatchRequest
from services.gateway.datasets import DatasetChanges, DatasetRequest
from services.gateway.forced_states import ForcedState
from services.gateway.jobs import JobRequest
from services.gateway.queues import QueueRequest, RetryRequest
from services.gateway.registrations import AppToggle
from services.gateway.reruns import RerunRequest
from services.gateway.uploads import CompleteRequest, UploadRequest
from services.gateway.users import Login, NewKey, NewUser, UserChanges
from services.gateway.webhooks import NewWebhook
from shared.apps import AppSpec
from shared.models import JobState

META_PATHS = frozenset({"/openapi.json", "/docs"})
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
    503: "A backend did not answer (see Retry-After)",
}


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    location: str = "query"


@dataclass(frozen=True)
class Operation:
    """What one method on one path does, takes and answers."""

    summary: str
    tag: str
    status: int
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    body_optional: bool = False
    replay: bool = False  # also answers 200 with the same model: an earlier request's result
    upload: bool = False
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False
    media_type: str = "application/json"


PAGED = (
    Param("limit", "Items per page, 1-500 (default 50)", {"type": "integer", "minimum": 1, "maximum": 500}),
    Param("cursor", "The next_cursor of the previous page"),
)
WAIT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 300}
AFTER = Param("after", "Continue after this event id (as the Last-Event-ID header does)")
LAST_EVENT_ID = Param(
    "Last-Event-ID", "Continue after this event id (sent by EventSource on reconnect)", location="header"
)
EVENT_STREAM = "text/event-stream"
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
QUEUE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "1-255 visible ASCII characters; the same key with another request is 409; kept a day",
    location="header",
)
REDIRECT = (Param("redirect", "1/true/yes: answer 302 to the URL instead", {"type": "string"}),)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/healthz"): Operation("The process answers", "health", 200, schemas.Health, public=True),
    ("GET", "/readyz"): Operation(
        "Mongo, S3 and RabbitMQ all answer", "health", 200, schemas.Ready, errors=(503,), public=True
    ),
    ("POST", "/v1/auth/login"): Operation(
        "Exchange username and password for a bearer token",
        "auth",
        200,
        schemas.Token,
        body=Login,
        errors=(401,),
        public=True,
    ),
    ("GET", "/v1/me"): Operation("The caller", "auth", 200, schemas.UserOut),
    ("POST", "/v1/users"): Operation(
        "Create a user (admin)", "users", 201, schemas.UserOut, body=NewUser, errors=(403, 409)
    ),
    ("GET", "/v1/users"): Operation("List users (admin)", "users", 200, schemas.UserPage, query=PAGED, errors=(403,)),
    ("GET", "/v1/users/{user_id}"): Operation(
        "A user (admins: anyone; users: themselves)", "users", 200, schemas.UserOut
    ),
    ("DELETE", "/v1/users/{user_id}"): Operation(
        "Disable a user (admin)", "users", 200, schemas.UserOut, errors=(403, 409)
    ),
    ("PATCH", "/v1/users/{user_id}"): Operation(
        "Set a user's own limit of jobs running or dispatched at once (admin; null: the deployment's USER_MAX_RUNNING)",
        "users",
        200,
        schemas.UserOut,
        body=UserChanges,
        errors=(403,),
    ),
    ("POST", "/v1/keys"): Operation(
        "Create an API key; its secret is shown once", "keys", 201, schemas.KeyCreated, body=NewKey
    ),
    ("GET", "/v1/keys"): Operation("The caller's API keys", "keys", 200, schemas.KeyPage, query=PAGED),
    ("GET", "/v1/keys/{key_id}"): Operation("An API key", "keys", 200, schemas.KeyOut),
    ("DELETE", "/v1/keys/{key_id}"): Operation("Revoke an API key", "keys", 200, schemas.KeyOut),
    ("POST", "/v1/files"): Operation(
        "Upload a file: the request body is the file, streamed into object storage",
        "files",
        201,
        schemas.FileOut,
        upload=True,
        query=(Param("name", "The file's name (no '/', at most 255 bytes)"),),
    ),
    ("GET", "/v1/files"): Operation(
        "The caller's files, newest first",
        "files",
        200,
        schemas.FilePage,
        query=(
            *PAGED,
            Param("name_prefix", "Only names starting with this text"),
            Param("content_type", "Only this media type"),
            Param("created_after", "ISO 8601 time"),
            Param("created_before", "ISO 8601 time"),
        ),
    ),
    ("GET", "/v1/files/{file_id}"): Operation("A file's metadata", "files", 200, schemas.FileOut),
    ("DELETE", "/v1/files/{file_id}"): Operation(
        "Delete a file and its bytes (409 while a queued or running job uses it)", "files", 204, None, errors=(409,)
    ),
    ("GET", "/v1/files/{file_id}/download"): Operation(
        "A presigned download link", "files", 200, schemas.FileDownload, query=REDIRECT, errors=(302,)
    ),
    ("POST", "/v1/uploads"): Operation(
        "Announce a direct-to-S3 upload; answers presigned PUT URL(s)",
        "files",
        201,
        schemas.UploadOut,
        body=UploadRequest,
    ),
    ("GET", "/v1/uploads/{upload_id}"): Operation("A pending upload, with fresh URLs", "files", 200, schemas.UploadOut),
    ("DELETE", "/v1/uploads/{upload_id}"): Operation("Cancel a pending upload", "files", 204, None, errors=(409,)),
    ("POST", "/v1/uploads/{upload_id}/complete"): Operation(
        "Verify size and sha256 in S3 and turn the upload into a file",
        "files",
        201,
        schemas.FileOut,
        body=CompleteRequest,
        body_optional=True,
        errors=(409,),
    ),
    ("POST", "/v1/datasets"): Operation(
        "Create a dataset from an uploaded zip, tar or tar.gz; every member is checked first",
        "datasets",
        201,
        schemas.DatasetOut,
        body=DatasetRequest,
        errors=(409,),
    ),
    ("GET", "/v1/datasets"): Operation(
        "The caller's datasets, newest first",
        "datasets",
        200,
        schemas.DatasetPage,
        query=(
            *PAGED,
            Param("name_prefix", "Only names starting with this text"),
            Param("tag", "Only datasets with this tag"),
            Param("created_after", "ISO 8601 time"),
            Param("created_before", "ISO 8601 time"),
        ),
    ),
    ("GET", "/v1/datasets/{dataset_id}"): Operation("A dataset with its members", "datasets", 200, schemas.DatasetOut),
    ("PATCH", "/v1/datasets/{dataset_id}"): Operation(
        "Change a dataset's name, description or tags",
        "datasets",
        200,
        schemas.DatasetOut,
        body=DatasetChanges,
        errors=(409,),
    ),
    ("DELETE", "/v1/datasets/{dataset_id}"): Operation(
        "Delete a dataset (409 while a queued or running job reads it)", "datasets", 204, None, errors=(409,)
    ),
    ("GET", "/v1/cluster"): Operation(
        "Workers, queue depths and active jobs (the caller's; an admin's: all)", "cluster", 200, schemas.Cluster
    ),
    ("GET", "/v1/apps"): Operation(
        "The apps that can run, each in its current version (admins also see disabled apps)",
        "apps",
        200,
        schemas.AppList,
    ),
    ("POST", "/v1/apps"): Operation(
        "Register a new app from its definition (admin; 409 if an app of that name exists)",
        "apps",
        201,
        schemas.AppOut,
        body=AppSpec,
        errors=(403, 409),
    ),
    ("GET", "/v1/apps/{name}"): Operation(
        "An app: parameter schema, inputs, outputs, limits; its latest enabled version unless `version` is given",
        "apps",
        200,
        schemas.AppOut,
        query=(Param("version", "This version instead of the current one"),),
    ),
    ("GET", "/v1/apps/{name}/versions"): Operation(
        "Every version of an app, newest first", "apps", 200, schemas.AppList
    ),
    ("POST", "/v1/apps/{name}/versions"): Operation(
        "Register a new version of an app (admin); new jobs use it from now on (409 if that version exists)",
        "apps",
        201,
        schemas.AppOut,
        body=AppSpec,
        errors=(403, 409),
    ),
    ("POST", "/v1/apps/{name}/disable"): Operation(
        "Disable an app, or one version of it (admin): no new job may use it; queued and running jobs go on",
        "apps",
        200,
        schemas.AppOut,
        body=AppToggle,
        body_optional=True,
        errors=(403,),
    ),
    ("POST", "/v1/apps/{name}/enable"): Operation(
        "Enable an app, or one version of it, again (admin)",
        "apps",
        200,
        schemas.AppOut,
        body=AppToggle,
        body_optional=True,
        errors=(403,),
    ),
    ("POST", "/v1/jobs"): Operation(
        "Submit a job; with Idempotency-Key, the same key and body answer the same job (200), never a second",
        "jobs",
        201,
        schemas.JobOut,
        body=JobRequest,
        query=(IDEMPOTENCY_KEY,),
        errors=(409,),
        replay=True,
    ),
    ("POST", "/v1/jobs/batch"): Operation(
        "Submit up to 10,000 jobs at once: all are validated first, then all are stored, or none "
        "(422 points into /jobs/N); with Idempotency-Key, a repeat answers the same batch (200)",
        "jobs",
        201,
        schemas.BatchOut,
        body=BatchRequest,
        query=(IDEMPOTENCY_KEY,),
        errors=(409, 413),
        replay=True,
    ),
    ("POST", "/v1/queues"): Operation(
        "Create a queue (409 if you have one of that name)",
        "queues",
        201,
        schemas.UserQueueOut,
        body=QueueRequest,
        errors=(409,),
    ),
    ("GET", "/v1/queues"): Operation(
        "The caller's queues (an admin's: everyone's) with job counts per state; the default queue always shows",
        "queues",
        200,
        schemas.UserQueuePage,
        query=PAGED,
    ),
    ("GET", "/v1/queues/{queue_id}"): Operation(
        "A queue, with job counts per state", "queues", 200, schemas.UserQueueOut
    ),
    ("DELETE", "/v1/queues/{queue_id}"): Operation(
        "Delete an empty queue; with force=true, cancel and delete its jobs too (409 while some are being stopped)",
        "queues",
        204,
        None,
        query=(Param("force", "1/true/yes: delete the queue's jobs as well"),),
        errors=(409,),
    ),
    ("POST", "/v1/queues/{queue_id}/pause"): Operation(
        "Pause: nothing new starts; running jobs finish", "queues", 200, schemas.UserQueueOut
    ),
    ("POST", "/v1/queues/{queue_id}/resume"): Operation("Resume a paused queue", "queues", 200, schemas.UserQueueOut),
    ("POST", "/v1/queues/{queue_id}/retry"): Operation(
        "Put the queue's FAILED jobs (or those in `states`) back to QUEUED; their old outputs are deleted",
        "queues",
        200,
        schemas.RetryOut,
        body=RetryRequest,
        body_optional=True,
    ),
    ("POST", "/v1/queues/{queue_id}/recover"): Operation(
        "Put the queue's RUNNING jobs whose worker stopped heartbeating back to QUEUED",
        "queues",
        200,
        schemas.RecoverOut,
    ),
    ("GET", "/v1/jobs"): Operation(
        "The caller's jobs (an admin's: everyone's), newest first; every filter given must hold",
        "jobs",
        200,
        schemas.JobPage,
        query=(
            *PAGED,
            Param(
                "state",
                "Only jobs in these states: repeat it, or separate them with commas",
                {"type": "array", "items": {"type": "string", "enum": [state.value for state in JobState]}},
            ),
            Param("exit_code", "Only jobs that exited with this code", {"type": "integer"}),
            Param("app", "Only jobs of this app"),
            Param("queue", "Only jobs of this queue (by name)", {"type": "string", "pattern": QUEUE_PATTERN}),
            Param("batch", "Only jobs of this batch", {"type": "string", "pattern": "^[0-9a-z]{26}$"}),
            Param("tag", "Only jobs with this tag", {"type": "string", "pattern": "^[a-z0-9._-]{1,50}$"}),
            Param("name_prefix", "Only names starting with this text (taken literally)"),
            Param("created_after", "ISO 8601 time"),
            Param("created_before", "ISO 8601 time"),
            Param("finished_after", "ISO 8601 time"),
            Param("finished_before", "ISO 8601 time"),
            Param(
                "sort",
                "created: oldest first; -created: newest first (the default)",
                {"type": "string", "enum": ["created", "-created"]},
            ),
        ),
        errors=(400,),
    ),
    ("GET", "/v1/jobs/{job_id}"): Operation("A job", "jobs", 200, schemas.JobOut),
    ("DELETE", "/v1/jobs/{job_id}"): Operation(
        "Delete a job with its outputs, logs and archive; an unfinished job is canceled first "
        "(409 with Retry-After while a running one is being stopped and packaged)",
        "jobs",
        204,
        None,
        errors=(409,),
    ),
    ("POST", "/v1/jobs/{job_id}/cancel"): Operation(
        "Cancel: QUEUED becomes CANCELED at once; RUNNING is stopped within seconds; finished jobs stay as they are",
        "jobs",
        200,
        schemas.JobOut,
    ),
    ("POST", "/v1/jobs/{job_id}/rerun"): Operation(
        "Submit a new job like this one (same app and version), with optional overrides; "
        "409 if that version is no longer the app's current one, or the app is disabled",
        "jobs",
        201,
        schemas.JobOut,
        body=RerunRequest,
        body_optional=True,
        errors=(409,),
    ),
    ("POST", "/v1/jobs/{job_id}/state"): Operation(
        "Force a job's state, with a reason kept in its history (admin; 409 if it is in that state already)",
        "jobs",
        200,
        schemas.JobOut,
        body=ForcedState,
        errors=(403, 409),
    ),
    ("GET", "/v1/jobs/{job_id}/events"): Operation(
        "The job's events as Server-Sent Events (state, progress, log, archive); ends once the job has finished",
        "jobs",
        200,
        None,
        query=(AFTER, LAST_EVENT_ID),
        media_type=EVENT_STREAM,
    ),
    ("GET", "/v1/events"): Operation(
        "The caller's job events (an admin's: all) as Server-Sent Events; ends after `wait` seconds without one",
        "jobs",
        200,
        None,
        query=(
            AFTER,
            LAST_EVENT_ID,
            Param("wait", "Seconds without events before the stream ends, 1-300 (default 30)", WAIT_SCHEMA),
        ),
        media_type=EVENT_STREAM,
    ),
    ("GET", "/v1/jobs/{job_id}/logs/{name}"): Operation(
        "A byte range of the job's stored stdout or stderr (409 until it ends: follow its events meanwhile; "
        "410 once its retention ran out)",
        "jobs",
        200,
        schemas.LogSlice,
        query=(
            Param("offset", "First byte (default 0); negative counts from the end", {"type": "integer"}),
            Param("length", "Bytes to read, 1 to 1 MiB (default 64 KiB)", {"type": "integer", "minimum": 1}),
        ),
        errors=(400, 409, 410),
    ),
    ("GET", "/v1/jobs/{job_id}/archive"): Operation(
        "A presigned link to the job's tar.gz; with `include`, to one of only the outputs the globs match, "
        "packaged on the first request (409 with Retry-After until it is ready) and kept for the same globs; "
        "410 once the job's retention ran out",
        "jobs",
        200,
        schemas.ArchiveLink,
        query=(
            *REDIRECT,
            Param(
                "include",
                "Only outputs matching these globs (repeat it; `*` and `?` within a name, `**/` across directories)",
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 200},
                    "maxItems": 20,
                },
            ),
        ),
        errors=(302, 409, 410, 422),
    ),
    ("GET", "/v1/jobs/{job_id}/outputs"): Operation(
        "The outputs of a finished job, with size, sha256 and content type (409 while it runs)",
        "jobs",
        200,
        schemas.OutputList,
        errors=(409, 410),
    ),
    ("GET", "/v1/jobs/{job_id}/outputs/{path}"): Operation(
        "Presigned GET and HEAD links to one output of a finished job (409 while it runs)",
        "jobs",
        200,
        schemas.OutputLink,
        query=REDIRECT,
        errors=(302, 409, 410),
    ),
    # Webhooks
    ("POST", "/v1/webhook-secret"): Operation(
        "Create (or replace) your webhook signing secret; it is shown in this answer only",
        "webhooks",
        201,
        schemas.WebhookSecretOut,
    ),
    ("POST", "/v1/webhooks"): Operation(
        "Register a URL for the terminal events of your jobs that carry no webhook of their own "
        "(409 without a signing secret, or beyond 10 webhooks; 422 for a private address)",
        "webhooks",
        201,
        schemas.WebhookOut,
        body=NewWebhook,
        errors=(409,),
    ),
    ("GET", "/v1/webhooks"): Operation(
        "The caller's webhooks (an admin's: everyone's), newest first",
        "webhooks",
        200,
        schemas.WebhookPage,
        query=PAGED,
    ),
    ("GET", "/v1/webhooks/{webhook_id}"): Operation("A registered webhook", "webhooks", 200, schemas.WebhookOut),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Operation(
        "Delete a webhook: no new deliveries go to it; those under way go on", "webhooks", 204, None
    ),
    ("GET", "/v1/jobs/{job_id}/deliveries"): Operation(
        "The webhook deliveries of the job's events, oldest first, each with every attempt",
        "webhooks",
        200,
        schemas.DeliveryList,
    ),
}


def _operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _served(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    served = set()
    for route in routes:
        inner = route.routes if isinstance(route, Mount) else [route]
        prefix = route.path if isinstance(route, Mount) else ""
        for sub in inner:
            if isinstance(sub, Route) and prefix + sub.path not in META_PATHS:
                path = re.sub(r"{(\w+):\w+}", r"{\1}", prefix + sub.path)  # {path:path} is {path} in OpenAPI
                served |= {(m, path) for m in (sub.methods or set()) if m != "HEAD"}
    return served


def build_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``; every route must have an Operation, and every Operation a route."""
    served = _served(routes)
    if served != set(OPERATIONS):
        raise RuntimeError(f"routes and OpenAPI operations differ: {sorted(served ^ set(OPERATIONS))}")
    answers = {op.answer for op in OPERATIONS.values() if op.answer} | {schemas.Problem}
    bodies = {op.body for op in OPERATIONS.values() if op.body}
    refs, definitions = models_json_schema(
        [(model, "serialization") for model in answers] + [(model, "validation") for model in bodies],
        ref_template="#/components/schemas/{model}",
    )
    problem = {"application/problem+json": {"schema": refs[(schemas.Problem, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(OPERATIONS.items()):
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
            responses[str(status)] = {"description": ERROR_TEXT[status]} | (
                {} if status == 302 else {"content": problem}
            )
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
                "content": {
                    "application/octet-stream": {"schema": binary},
                    "multipart/form-data": {"schema": form},
                },
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "quern", "version": "1", "description": "A job service for scientific computing."},
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


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>quern API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""


def meta_routes(document: dict[str, Any]) -> list[Route]:
    """/openapi.json and /docs, both public."""

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_PAGE)

    return [Route("/openapi.json", openapi_json), Route("/docs", docs)]
