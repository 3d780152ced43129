"""TES tasks: created, listed with the spec's filters, described in a view, and canceled."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.submission import SubmissionStores
from services.gateway.domain.tasks import TaskState, cancel_task, get_task, list_tasks, submit_task
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.pages import decode_cursor, encode_cursor
from services.gateway.surfaces.tes.models import (
    dumped,
    tesCreateTaskResponse,
    tesListTasksResponse,
    tesTask,
    tesView,
)
from services.gateway.surfaces.tes.views import render_task
from shared.errors import BadRequest
from shared.models import TaskSpec
from shared.store.jobs import TaskFilter

resource = Resource("TaskService")
MAX_TASK_BYTES = 32 * 2**20  # up to 20 executors, 1000 inputs and outputs; inline content is 1 MiB at most each
DEFAULT_PAGE_SIZE = 256
MAX_PAGE_SIZE = 2048


def answer(body: dict[str, Any]) -> Response:
    """A TES message as JSON."""
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")


def read_task(raw: bytes) -> TaskSpec:
    """The body as a task (400 listing each violation); run off the event loop, since a task may be megabytes."""
    task = parse_model(raw, tesTask)
    if task.executors is None:
        raise BadRequest("a task needs executors")
    try:  # a lone surrogate (\ud800) parses as JSON but is no text Mongo or a container can hold
        task.model_dump_json()
    except PydanticSerializationError:
        raise BadRequest("the body holds a string that is not valid Unicode") from None
    return task.spec()


def view_of(request: Request) -> tesView:
    """The ``view`` query parameter (default MINIMAL); 400 for anything else."""
    raw = request.query_params.get("view", tesView.MINIMAL.value)
    try:
        return tesView(raw)
    except ValueError:
        raise BadRequest(f"view must be MINIMAL, BASIC or FULL, not {raw!r}") from None


@resource.endpoint("POST", "/tasks", summary="CreateTask", answer=tesCreateTaskResponse)
async def create(request: Request) -> Response:
    """POST /tasks: check the task, store it as a job, answer its id."""
    d = deps(request)
    task = await run_in_threadpool(read_task, await read_body(request, MAX_TASK_BYTES))
    job = await submit_task(
        stores=SubmissionStores.of(d.stores),
        task=task,
        owner=principal(request).user_id,
        policy=d.settings.task_policy(),
        networks=d.settings.allowed_networks(),
        timeout_seconds=d.settings.tes_timeout_seconds,
        wake=d.wake,
        quotas=await d.quotas(principal(request).user_id),
    )
    return answer(dumped(tesCreateTaskResponse(id=job.id)))


def task_filter(request: Request) -> TaskFilter:
    """name_prefix, state, and tag_key/tag_value zipped (a missing value is "": any value)."""
    query = request.query_params
    state = query.get("state")
    if state is not None and state not in TaskState.__members__:
        raise BadRequest(f"state must be one of {', '.join(TaskState.__members__)}")
    keys, values = query.getlist("tag_key"), query.getlist("tag_value")
    if len(values) > len(keys):
        raise BadRequest("more tag_value than tag_key parameters")
    values += [""] * (len(keys) - len(values))
    tags = tuple(zip(keys, values, strict=True))
    return TaskFilter(name_prefix=query.get("name_prefix") or None, state=state, tags=tags)


def page_size(request: Request) -> int:
    """``page_size``, 1 to 2048 (default 256)."""
    raw = request.query_params.get("page_size", str(DEFAULT_PAGE_SIZE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadRequest(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


@resource.endpoint("GET", "/tasks", summary="ListTasks", answer=tesListTasksResponse)
async def listing(request: Request) -> Response:
    """GET /tasks: the caller's tasks, newest first, a page at a time."""
    view, where, limit = view_of(request), task_filter(request), page_size(request)
    token = request.query_params.get("page_token")
    after = decode_cursor(token) if token else None
    page = await list_tasks(
        jobs=deps(request).stores.jobs, owner=principal(request).user_id, limit=limit, after=after, where=where
    )
    tasks = [render_task(job, view) for job in page.items]
    token = None if page.next_after is None else encode_cursor(page.next_after)
    return answer(dumped(tesListTasksResponse(tasks=tasks, next_page_token=token)))


@resource.endpoint("GET", "/tasks/{id}", summary="GetTask", answer=tesTask)
async def describe(request: Request) -> Response:
    """GET /tasks/{id}: the task in the asked view."""
    view = view_of(request)
    job = await get_task(
        jobs=deps(request).stores.jobs, task_id=request.path_params["id"], owner=principal(request).user_id
    )
    return answer(dumped(render_task(job, view)))


@resource.endpoint("POST", "/tasks/{id}:cancel", summary="CancelTask", answer=None)
async def cancel(request: Request) -> Response:
    """POST /tasks/{id}:cancel: queued tasks end at once, running ones are stopped; an ended task stays as it is."""
    d, who = deps(request), principal(request)
    await cancel_task(
        jobs=d.stores.jobs,
        events=d.stores.events,
        broker=d.broker,
        task_id=request.path_params["id"],
        owner=who.user_id,
        who=who.username,
    )
    return answer({})
