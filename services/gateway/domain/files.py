"""Uploaded input files: streamed into S3 (never held whole in memory or on disk), handed out, deleted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import structlog
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.quotas import check_room
from shared.errors import BadRequest, NotYet, TooLarge
from shared.models import StoredFile, new_id, utcnow
from shared.storage import ObjectSink, ObjectStorage
from shared.store.files import FileStore
from shared.store.jobs import JobStore

log = structlog.get_logger()
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class DownloadLink:
    """A presigned GET of a file's bytes, with what the caller needs to check them."""

    url: str
    expires_at: datetime
    size: int
    sha256: str


def check_name(name: str | None) -> str:
    """A file name as users will see it again in jobs and archives: no paths, no control characters."""
    if not name:
        raise BadRequest("say what the file is called: POST /v1/files?name=FILENAME (or a form file with a filename)")
    if len(name.encode()) > 255 or _UNSAFE_NAME.search(name) or name in {".", ".."}:
        raise BadRequest("the file name must be 1-255 bytes (UTF-8) with no '/', '\\' or control characters")
    return name


def check_upload(name: str | None, *, declared_size: int | None, max_bytes: int) -> str:
    """The checked name of a file about to be received: its name is checked first, then its declared size."""
    name = check_name(name)
    if declared_size is not None and declared_size > max_bytes:
        raise TooLarge(f"uploads are limited to {max_bytes} bytes")
    return name


async def receive_upload(
    *,
    files: FileStore,
    storage: ObjectStorage,
    chunks: AsyncIterator[bytes],
    owner: str,
    name: str | None,
    content_type: str,
    declared_size: int | None,
    max_bytes: int,
    room: int | None,
) -> StoredFile:
    """Check the file's name and declared size, stream ``chunks`` into a new S3 object part by part, record the file.

    Parts upload while the next is read, so memory stays at a few parts. On any
    failure (client gone, too large, S3 refusing) the partial upload is aborted and nothing
    is recorded. ``room``: the bytes the owner's stored-bytes quota leaves (None: no quota).
    """
    name = check_upload(name, declared_size=declared_size, max_bytes=max_bytes)
    check_room(declared_size or 0, room)
    file_id = new_id()
    sink: ObjectSink = storage.sink(f"files/{file_id}", content_type=content_type)
    # Chunks are copied straight into a part allocated whole (no list to join, no regrowing), and a
    # full part is handed over before more is read: the gateway holds the part filling and the
    # sink's parts in flight, no more.
    size = storage.part_size
    part, filled = bytearray(size), 0
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise TooLarge(f"uploads are limited to {max_bytes} bytes")
            check_room(received, room)
            rest = memoryview(chunk)
            while rest:
                taken = min(len(rest), size - filled)
                part[filled : filled + taken] = rest[:taken]
                filled, rest = filled + taken, rest[taken:]
                if filled == size:
                    await run_in_threadpool(sink.write, part)
                    part, filled = bytearray(size), 0
        del part[filled:]
        await run_in_threadpool(sink.write, part)
        await run_in_threadpool(sink.finish)
    except BaseException:
        await run_in_threadpool(sink.abort)
        raise
    record = StoredFile(
        id=file_id,
        owner=owner,
        name=name,
        size=sink.size,
        sha256=sink.sha256,
        content_type=content_type,
        key=sink.key,
        created=utcnow(),
    )
    try:
        await files.insert_file(record)
    except BaseException:
        await run_in_threadpool(storage.delete_prefix, sink.key)
        raise
    log.info("file_uploaded", file_id=file_id, size=record.size, sha256=record.sha256)
    return record


async def download_link(
    *, files: FileStore, storage: ObjectStorage, file_id: str, owner: str | None, expires_in: int
) -> DownloadLink:
    """A presigned GET of the file on the public endpoint, saved under the file's name."""
    file = await files.get_file(file_id, owner=owner)
    url, expires_at = await run_in_threadpool(storage.presign_get, file.key, expires_in=expires_in, filename=file.name)
    return DownloadLink(url=url, expires_at=expires_at, size=file.size, sha256=file.sha256)


async def _refuse_if_in_use(file: StoredFile, *, jobs: JobStore) -> None:
    users = await jobs.active_jobs_using(file.id, owner=file.owner)
    if users:
        raise NotYet(
            f"file {file.id} is an input of queued or running jobs ({', '.join(users)}); delete it later",
            retry_after=10,
        )


async def delete_file(
    *, files: FileStore, jobs: JobStore, storage: ObjectStorage, file_id: str, owner: str | None
) -> StoredFile:
    """Delete a file's record and object; Conflict while a queued or running job needs it.

    The record goes first, so no new job can take the file; a job submitted in between is
    caught by a second look, and then (as when S3 refuses) the record is put back.
    """
    file = await files.get_file(file_id, owner=owner)
    await _refuse_if_in_use(file, jobs=jobs)
    await files.delete_file(file)
    try:
        await _refuse_if_in_use(file, jobs=jobs)
        await run_in_threadpool(storage.delete, file.key)
    except BaseException:
        await files.insert_file(file)
        raise
    log.info("file_deleted", file_id=file.id)
    return file
