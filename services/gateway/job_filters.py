"""The query of GET /v1/jobs: which jobs (state, exit code, app, tag, name prefix, times) and in which order."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from services.gateway.params import timestamp
from shared.errors import BadRequest
from shared.models import JobState
from shared.mongo import JobFilter

_TAG = re.compile(r"^[a-z0-9._-]{1,50}$")
_INTEGER = re.compile(r"^-?\d{1,10}$")
SORTS = {"created": True, "-created": False}  # sort -> oldest first?


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


def job_query(request: Request) -> JobQuery:
    """Read the filters and ``sort`` of a job list; 400 for any value that cannot be meant."""
    sort = request.query_params.get("sort", "-created")
    if sort not in SORTS:
        raise BadRequest("sort must be created (oldest first) or -created (newest first, the default)")
    app = request.query_params.get("app")
    if app is not None and not app:
        raise BadRequest("app must name an app")
    where = JobFilter(
        states=_states(request),
        exit_code=_exit_code(request),
        app=app,
        tag=_tag(request),
        name_prefix=request.query_params.get("name_prefix") or None,
        created_after=timestamp(request, "created_after"),
        created_before=timestamp(request, "created_before"),
        finished_after=timestamp(request, "finished_after"),
        finished_before=timestamp(request, "finished_before"),
    )
    return JobQuery(where, SORTS[sort])
