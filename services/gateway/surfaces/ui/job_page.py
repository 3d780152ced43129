"""The job page: parameters, inputs, state history, progress, log tail, and once it ends its results and previews.

The page is rendered from the job and its events up to a settled point; the browser then follows
the job's event stream from that event on, so nothing is shown twice or skipped. The results
section is a fragment of its own, fetched again by the page once the job has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import Deps, deps
from services.gateway.domain.archives import full_archive
from services.gateway.domain.events import horizon
from services.gateway.domain.logs import log_slice
from services.gateway.plumbing.auth import principal
from services.gateway.surfaces.ui.templates import page
from shared.errors import AppError
from shared.models import Event, Job, OutputFile

MAX_EVENTS = 2000  # read for the page; later ones come by its stream
LOG_LINES = 200  # the tail shown of a running job's output
STORED_LOG_BYTES = 16 * 1024  # the tail shown of a finished job's stored stdout
PREVIEW_BYTES = {"csv": 64 * 1024, "json": 256 * 1024, "text": 16 * 1024}  # read by the browser, at most
IMAGES = {"image/png", "image/jpeg", "image/svg+xml"}
TEXT_SUFFIXES = {".txt", ".log", ".out", ".md", ".dat"}


def preview_kind(output: OutputFile) -> str | None:
    """How the browser previews an output: image, csv, json, text, or not at all."""
    suffix = PurePosixPath(output.path).suffix.lower()
    if output.content_type in IMAGES:
        return "image"
    if suffix == ".csv" or output.content_type == "text/csv":
        return "csv"
    if suffix == ".json" or output.content_type == "application/json":
        return "json" if output.size <= PREVIEW_BYTES["json"] else "text"
    if suffix in TEXT_SUFFIXES or output.content_type.startswith("text/"):
        return "text"
    return None


@dataclass(frozen=True)
class ShownOutput:
    """An output as the page lists it: with its presigned download and how it is previewed."""

    output: OutputFile
    url: str
    preview: str | None
    preview_bytes: int


@dataclass(frozen=True)
class Timeline:
    """What the job's events say up to a settled point: state changes, the log tail, the last event's id."""

    states: list[Event]
    log: list[tuple[str, str]]
    last_id: str | None


async def timeline(d: Deps, job: Job) -> Timeline:
    """The job's state changes and output lines from its recorded events."""
    # A running job's page follows its stream from a settled point; a finished job's is not followed, so all
    # of its events are read, its last state change (recorded a moment ago, maybe) included.
    before = None if job.state.terminal else horizon()
    recorded = await d.stores.events.events_after(None, before=before, job_id=job.id, limit=MAX_EVENTS)
    log: list[tuple[str, str]] = []
    for event in recorded:
        if event.type == "log":
            log.extend((str(event.data.get("stream", "")), str(line)) for line in event.data.get("lines", []))
    return Timeline(
        states=[event for event in recorded if event.type == "state"],
        log=log[-LOG_LINES:],
        last_id=recorded[-1].id if recorded else None,
    )


async def results(d: Deps, job: Job) -> dict[str, Any]:
    """The results part of the page: outputs with downloads and previews, the archive, the stored log's tail."""
    if not job.state.terminal or job.expired is not None:
        return {"outputs": [], "archive": None, "stdout_tail": None}
    expires_in = d.settings.presign_expiry_seconds
    shown = []
    for output in job.outputs:
        filename = PurePosixPath(output.path).name
        url, _ = await run_in_threadpool(d.storage.presign_get, output.key, expires_in=expires_in, filename=filename)
        kind = preview_kind(output)
        shown.append(ShownOutput(output, url, kind, PREVIEW_BYTES.get(kind or "", 0)))
    archive = None
    try:
        stored = full_archive(job)
        url, _ = await run_in_threadpool(
            d.storage.presign_get, stored.key, expires_in=expires_in, filename=f"{job.id}.tar.gz"
        )
        archive = {"url": url, "size": stored.size, "sha256": stored.sha256}
    except AppError:
        pass  # not packaged yet: the page asks again when the archive event comes
    stdout_tail = None
    if "stdout" in job.logs:
        excerpt = await log_slice(
            jobs=d.stores.jobs,
            storage=d.storage,
            job_id=job.id,
            owner=None,
            name="stdout",
            start=-STORED_LOG_BYTES,
            length=STORED_LOG_BYTES,
        )
        stdout_tail = excerpt.text
    shown.sort(key=lambda each: (each.preview != "image", each.output.path))  # pictures first: the map
    return {"outputs": shown, "archive": archive, "stdout_tail": stdout_tail}


async def show_job(request: Request) -> Response:
    """GET /ui/jobs/{job_id}: another user's job is a 404, as in the API."""
    d = deps(request)
    job = await d.stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    return page(request, "job.html", job=job, timeline=await timeline(d, job), **await results(d, job))


async def show_results(request: Request) -> Response:
    """GET /ui/jobs/{job_id}/results: the results section alone, fetched by the page once the job has ended."""
    d = deps(request)
    job = await d.stores.jobs.get_job(request.path_params["job_id"], owner=principal(request).owner_filter)
    return page(request, "results.html", job=job, **await results(d, job))
