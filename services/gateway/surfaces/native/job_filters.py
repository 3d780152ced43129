"""The query of GET /v1/jobs: which jobs (state, exit code, app, queue, tag, name prefix, times) and in which order.

The parameters are declared here for the OpenAPI document, beside the code that reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from services.gateway.plumbing.endpoints import Param
from services.gateway.plumbing.params import timestamp
from shared.errors import BadRequest
from shared.models import JobState
from shared.store.jobs import JobFilter

TAG_PATTERN = "^[a-z0-9._-]{1,50}$"
QUEUE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ID_PATTERN = "^[0-9a-z]{26}$"
_TAG = re.compile(TAG_PATTERN)
_QUEUE = re.compile(QUEUE_PATTERN)
_ID = re.compile(ID_PATTERN)
_INTEGER = re.compile(r"^-?\d{1,10}$")
SORTS = {"created": True, "-created": False}  # sort -> oldest first?

JOB_FILTERS = (
    Param(
        "state",
        "Only jobs in these states: repeat it, or separate them with commas",
        {"type": "array", "items": {"type": "string", "enum": [state.value for state in JobState]}},
    ),
    Param("exit_code", "Only jobs that exited with this code", {"type": "integer"}),
    Param("app", "Only jobs of this app"),
    Param("queue", "Only jobs of this queue (by name)", {"type": "string", "pattern": QUEUE_PATTERN}),
    Param("batch", "Only jobs of this batch", {"type": "string", "pattern": ID_PATTERN}),
    Param("tag", "Only jobs with this tag", {"type": "string", "pattern": TAG_PATTERN}),
    Param("name_prefix", "Only names starting with this text (taken literally)"),
    Param("created_after", "ISO 8601 time"),
    Param("created_before", "ISO 8601 time"),
    Param("finished_after", "ISO 8601 time"),
    Param("finished_before", "ISO 8601 time"),
    Param(
        "sort", "created: oldest first; -created: newest first (the default)", {"type": "string", "enum": list(SORTS)}
    ),
)


@dataclass(frozen=True)
class JobQuery:
    """A parsed job list query."""

    where: JobFilter
    oldest_first: bool


def _states(request: Request) -> tuple[JobState, ...]:
    names = [name.strip() for value in request.query_params.getlist("state") for name in value.split(",")]
    states = []
    for name in names:
        if name.upper() not in JobState.__members__:
            raise BadRequest(f"state must be one or more of {', '.join(JobState)} (repeated or comma-separated)")
        states.append(JobState(name.upper()))
    return tuple(dict.fromkeys(states))


def _exit_code(request: Request) -> int | None:
    raw = request.query_params.get("exit_code")
    if raw is None:
        return None
    if not _INTEGER.match(raw.strip()):
        raise BadRequest("exit_code must be a whole number, such as 0 or 1")
    return int(raw)


def _tag(request: Request) -> str | None:
    tag = request.query_params.get("tag")
    if tag is not None and not _TAG.match(tag):
        raise BadRequest("tag must be 1-50 characters of a-z, 0-9, '.', '_' and '-'")
    return tag


def _batch(request: Request) -> str | None:
    batch = request.query_params.get("batch")
    if batch is not None and not _ID.match(batch):
        raise BadRequest("batch must be a batch id, as POST /v1/jobs/batch answered")
    return batch


def job_query(request: Request) -> JobQuery:
    """Read the filters and ``sort`` of a job list; 400 for any value that cannot be meant."""
    sort = request.query_params.get("sort", "-created")
    if sort not in SORTS:
        raise BadRequest("sort must be created (oldest first) or -created (newest first, the default)")
    app = request.query_params.get("app")
    if app is not None and not app:
        raise BadRequest("app must name an app")
    queue = request.query_params.get("queue")
    if queue is not None and not _QUEUE.match(queue):
        raise BadRequest("queue must name a queue: 1-64 letters, digits, '.', '_' and '-'")
    where = JobFilter(
        states=_states(request),
        exit_code=_exit_code(request),
        app=app,
        queue=queue,
        batch=_batch(request),
        tag=_tag(request),
        name_prefix=request.query_params.get("name_prefix") or None,
        created_after=timestamp(request, "created_after"),
        created_before=timestamp(request, "created_before"),
        finished_after=timestamp(request, "finished_after"),
        finished_before=timestamp(request, "finished_before"),
    )
    return JobQuery(where, SORTS[sort])
