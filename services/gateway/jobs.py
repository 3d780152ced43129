"""Jobs: submit (validated, stored, then dispatched), follow, and fetch the packaged archive."""

from __future__ import annotations

import json
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.gateway.apps import find_app
from services.gateway.state import deps
from shared.apps import AppSpec, validate_request
from shared.broker import Broker
from shared.errors import BadRequest, Conflict, Invalid, NotFound, TooLarge, Unavailable, Violation
from shared.models import Job, new_id, utcnow
from shared.mongo import MongoStore
from shared.storage import ObjectStorage
from shared.tasks import RUN_JOB

log = structlog.get_logger()
MAX_BODY_BYTES = 1 * 2**20
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


class JobRequest(BaseModel):
    """The body of POST /v1/jobs."""

    model_config = ConfigDict(extra="forbid")
    app: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = {}
    inputs: dict[str, str] = Field(default={}, description="input slot -> file id")
    timeout_seconds: int | None = Field(default=None, ge=1)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) to read more than ``limit`` bytes into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"a job request is limited to {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"a job request is limited to {limit} bytes")
    return bytes(body)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_job_request(raw: bytes) -> JobRequest:
    """Read the body (strict JSON: no NaN or Infinity), reporting every shape error with a JSON pointer."""
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        violations = [Violation("".join(f"/{part}" for part in error["loc"]), error["msg"]) for error in exc.errors()]
        raise Invalid("the job request is malformed", violations) from None


async def submit_job(*, store: MongoStore, broker: Broker, apps: dict[str, AppSpec], request: JobRequest) -> Job:
    """Validate against the app, check the inputs exist, store the job, then dispatch it."""
    spec = find_app(apps, request.app)
    params = validate_request(spec, request.params, request.inputs)
    timeout = request.timeout_seconds or spec.timeout.default
    if timeout > spec.timeout.max:
        raise Invalid(
            f"app {spec.name} allows at most {spec.timeout.max} seconds",
            [Violation("/timeout_seconds", f"must be at most {spec.timeout.max}")],
        )
    found = await store.get_files(sorted(set(request.inputs.values())))
    for slot, file_id in sorted(request.inputs.items()):
        if file_id not in found:
            raise NotFound(f"input {slot!r}: no file {file_id}")
    job = Job(
        id=new_id(),
        app=spec.name,
        app_version=spec.version,
        params=params,
        inputs=request.inputs,
        timeout_seconds=timeout,
        created=utcnow(),
    )
    await store.insert_job(job)
    try:
        message_id = await run_in_threadpool(broker.send, RUN_JOB, job.id)
    except Unavailable:
        # Not dispatched means not accepted: take the record back so nothing waits forever.
        await store.delete_job(job.id)
        raise
    log.info("job_submitted", job_id=job.id, app=job.app, app_version=job.app_version, message_id=message_id)
    return job


def render_job(request: Request, job: Job) -> dict[str, Any]:
    """The public view of a job."""

    def iso(value: Any) -> str | None:
        return None if value is None else str(value.isoformat())

    url = str(request.url_for("job", job_id=job.id))
    return {
        "id": job.id,
        "url": url,
        "app": job.app,
        "app_version": job.app_version,
        "params": job.params,
        "inputs": job.inputs,
        "timeout_seconds": job.timeout_seconds,
        "state": job.state.value,
        "exit_code": job.exit_code,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "elapsed_seconds": job.elapsed_seconds,
        "error": None if job.error is None else job.error.model_dump(),
        "outputs": [o.model_dump(exclude={"key"}) for o in job.outputs],
        "archive": None if job.archive is None else job.archive.model_dump(mode="json", exclude={"key"}),
        "links": {
            "self": url,
            "app": str(request.url_for("app", name=job.app)),
            "archive": str(request.url_for("job_archive", job_id=job.id)),
        },
    }


async def archive_link(*, store: MongoStore, storage: ObjectStorage, job_id: str, expires_in: int) -> dict[str, Any]:
    """A presigned download of the job's archive, or Conflict while it is not packaged yet."""
    job = await store.get_job(job_id)
    if job.archive is None:
        waiting = "is packaged" if job.state.terminal else f"finishes (it is {job.state.value})"
        raise Conflict(f"job {job.id} has no archive yet; ask again once it {waiting}", retry_after=2)
    url, expires_at = await run_in_threadpool(
        storage.presign_get, job.archive.key, expires_in=expires_in, filename=f"{job.id}.tar.gz"
    )
    return {
        "url": url,
        "expires_at": expires_at.isoformat(),
        "size": job.archive.size,
        "sha256": job.archive.sha256,
        "created": job.archive.created.isoformat(),
    }


async def submit(request: Request) -> Response:
    """POST /v1/jobs."""
    d = deps(request)
    job = await submit_job(
        store=d.store, broker=d.broker, apps=d.apps, request=parse_job_request(await read_body(request, MAX_BODY_BYTES))
    )
    body = render_job(request, job)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


async def describe(request: Request) -> Response:
    """GET /v1/jobs/{job_id}."""
    job = await deps(request).store.get_job(request.path_params["job_id"])
    return JSONResponse(render_job(request, job))


async def archive(request: Request) -> Response:
    """GET /v1/jobs/{job_id}/archive[?redirect=1]."""
    d = deps(request)
    redirect = request.query_params.get("redirect", "").lower()
    if redirect not in _FLAGS:
        raise BadRequest("redirect must be 1/0, true/false or yes/no")
    link = await archive_link(
        store=d.store,
        storage=d.storage,
        job_id=request.path_params["job_id"],
        expires_in=d.settings.presign_expiry_seconds,
    )
    if _FLAGS[redirect]:
        return RedirectResponse(link["url"], status_code=302)
    return JSONResponse(link)
