"""A job's archives: the full one, and selective ones of only the outputs some globs match.

A selection is named by the sha256 of its sorted, de-duplicated globs, so the same globs in any
order find the same archive (``jobs/<id>/archives/<digest>.tar.gz``, recorded in the job's
``selections``). The first request records the selection and enqueues its packaging for the
results service; every request answers 409 (Retry-After) until the archive is there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.retention import require_not_expired
from shared.apps import matching_outputs
from shared.broker import Broker
from shared.errors import Invalid, NotYet, Unavailable, Violation
from shared.models import Archive, Job, Selection, utcnow
from shared.storage import ObjectStorage
from shared.store.archives import ArchiveStore
from shared.store.jobs import JobStore
from shared.tasks import PACKAGE_SELECTION

log = structlog.get_logger()


@dataclass(frozen=True)
class ArchiveDownload:
    """A presigned download of one of a job's archives: the full one (``include`` None) or a selection's."""

    url: str
    expires_at: datetime
    archive: Archive
    include: list[str] | None


async def archive_download(
    *,
    jobs: JobStore,
    archives: ArchiveStore,
    storage: ObjectStorage,
    broker: Broker,
    job_id: str,
    owner: str | None,
    include: list[str],
    expires_in: int,
) -> ArchiveDownload:
    """A presigned download of the job's full archive (no ``include``) or of the one of only the outputs it matches.

    NotYet (409, Retry-After) until the archive is there; the first request for a selection has it packaged.
    """
    job = await jobs.get_job(job_id, owner=owner)
    require_not_expired(job)
    if include:
        archive = await selected_archive(archives=archives, broker=broker, job=job, include=include)
        filename = f"{job.id}-{selection_digest(include)[:12]}.tar.gz"
    else:
        archive, filename = full_archive(job), f"{job.id}.tar.gz"
    url, expires_at = await run_in_threadpool(
        storage.presign_get, archive.key, expires_in=expires_in, filename=filename
    )
    return ArchiveDownload(url=url, expires_at=expires_at, archive=archive, include=include or None)


def full_archive(job: Job) -> Archive:
    """The job's archive of everything it left; NotYet while it is not packaged."""
    if job.archive is None:
        waiting = "is packaged" if job.state.terminal else f"finishes (it is {job.state.value})"
        raise NotYet(f"job {job.id} has no archive yet; ask again once it {waiting}", retry_after=2)
    return job.archive


MAX_GLOBS = 20
# A selection asked for this long ago and still not packaged is enqueued again (its message was lost,
# or its packager gave up); a second packager of the same selection writes the same bytes.
RESEND_AFTER = timedelta(minutes=15)


def selection_digest(include: list[str]) -> str:
    """The name of a selection: the sha256 of its sorted globs."""
    return hashlib.sha256(json.dumps(sorted(set(include))).encode()).hexdigest()


async def request_packaging(
    *, archives: ArchiveStore, broker: Broker, job: Job, digest: str, include: list[str]
) -> None:
    """Record the selection and enqueue its packaging, unless it is recorded already (then its packager is on it)."""
    requested = utcnow()
    selection = Selection(include=include, requested=requested)
    if not await archives.request_selection(job, digest, selection, resend_before=requested - RESEND_AFTER):
        return
    try:
        await run_in_threadpool(broker.send, PACKAGE_SELECTION, job.id, digest)
    except Unavailable:
        await archives.release_selection(job.id, digest, requested=requested)  # the next request tries again
        raise
    log.info("selection_requested", job_id=job.id, digest=digest, include=include)


def check_selection(job: Job, include: list[str]) -> None:
    """NotYet while the job runs (its outputs are not known), Invalid if ``include`` matches none of them."""
    if not job.state.terminal:
        raise NotYet(f"job {job.id} is {job.state.value}; its outputs can be selected once it finishes", retry_after=5)
    if not matching_outputs(job.outputs, include):
        detail = "matches none of the job's outputs"
        raise Invalid(f"include {include} {detail}", [Violation("/include", detail)])


async def selected_archive(*, archives: ArchiveStore, broker: Broker, job: Job, include: list[str]) -> Archive:
    """The archive of the outputs ``include`` matches; NotYet, having asked for its packaging, until it is there."""
    check_selection(job, include)
    digest = selection_digest(include)
    selection = job.selections.get(digest)
    if selection is None or selection.archive is None:
        await request_packaging(archives=archives, broker=broker, job=job, digest=digest, include=include)
        raise NotYet(f"the archive of job {job.id} with include {include} is being packaged; ask again", retry_after=2)
    return selection.archive
