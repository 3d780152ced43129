"""Uploaded input files: streamed into S3 (never held whole in memory or on disk), listed, downloaded, deleted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from services.gateway.auth import principal
from services.gateway.forms import file_part
from services.gateway.links import link
from services.gateway.pages import page_request, page_response
from services.gateway.params import flag, link_response, timestamp
from services.gateway.state import deps
from shared.errors import BadRequest, NotYet, TooLarge
from shared.models import StoredFile, new_id, utcnow
from shared.storage import ObjectSink, ObjectStorage
from shared.store.files import FileFilter, FileStore
from shared.store.jobs import JobStore

log = structlog.get_logger()
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_FORM_SLACK = 1 * 2**20  # a form may carry this much besides the file: boundaries, headers, small fields


def check_name(name: str | None) -> str:
    """A file name as users will see it again in jobs and archives: no paths, no control characters."""
    if not name:
        raise BadRequest("say what the file is called: POST /v1/files?name=FILENAME (or a form file with a filename)")
    if len(name.encode()) > 255 or _UNSAFE_NAME.search(name) or name in {".", ".."}:
        raise BadRequest("the file name must be 1-255 bytes (UTF-8) with no '/', '\\' or control characters")
    return name


async def _finish_quietly(write: asyncio.Future[Any] | None) -> None:
    if write is not None:
        try:
            await write
        except Exception:  # already failing; the original error is the one that matters
            pass


async def receive_upload(
    *,
    files: FileStore,
    storage: ObjectStorage,
    chunks: AsyncIterator[bytes],
    owner: str,
    name: str,
    content_type: str,
    max_bytes: int,
) -> StoredFile:
    """Stream ``chunks`` into a new S3 object part by part, then record the file.

    One part is uploaded while the next is read, so memory stays at a few parts. On any
    failure (client gone, too large, S3 refusing) the partial upload is aborted and nothing
    is recorded.
    """
    file_id = new_id()
    sink: ObjectSink = storage.sink(f"files/{file_id}", content_type=content_type)
    pending: list[bytes] = []
    pending_bytes = 0
    writing: asyncio.Future[Any] | None = None
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise TooLarge(f"uploads are limited to {max_bytes} bytes")
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= storage.part_size:
                if writing is not None:
                    await writing
                part = b"".join(pending)
                pending.clear()
                pending_bytes = 0
                writing = asyncio.ensure_future(run_in_threadpool(sink.write, part))
        if writing is not None:
            await writing
        await run_in_threadpool(sink.write, b"".join(pending))
        await run_in_threadpool(sink.finish)
    except BaseException:
        await _finish_quietly(writing)
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


def render_file(request: Request, file: StoredFile) -> dict[str, Any]:
    """The public view of a file."""
    return {
        "id": file.id,
        "url": link(request, "file", file_id=file.id),
        "owner": file.owner,
        "name": file.name,
        "size": file.size,
        "sha256": file.sha256,
        "content_type": file.content_type,
        "created": file.created.isoformat(),
    }


async def upload(request: Request) -> Response:
    """POST /v1/files[?name=NAME] with the file as the raw request body or as a form's ``file`` part."""
    d = deps(request)
    max_bytes = d.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    is_form = content_type == "multipart/form-data"
    if content_type.startswith("multipart/") and not is_form:
        raise BadRequest("send the file as the request body or as the 'file' part of a multipart/form-data form")
    name = request.query_params.get("name")
    if not is_form:
        name = check_name(name)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + (_FORM_SLACK if is_form else 0):
        raise TooLarge(f"uploads are limited to {max_bytes} bytes")
    chunks: AsyncIterator[bytes] = request.stream()
    try:
        if is_form:
            part = await file_part(
                chunks, content_type=request.headers["content-type"], max_bytes=max_bytes + _FORM_SLACK
            )
            name = check_name(name or part.filename)
            content_type, chunks = part.content_type, part.chunks
        assert name is not None
        file = await receive_upload(
            files=d.stores.files,
            storage=d.storage,
            chunks=chunks,
            owner=principal(request).user_id,
            name=name,
            content_type=content_type or "application/octet-stream",
            max_bytes=max_bytes,
        )
    except ClientDisconnect:
        log.info("upload_abandoned", name=name)
        raise BadRequest("the client went away before the upload finished") from None
    body = render_file(request, file)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


async def describe(request: Request) -> Response:
    """GET /v1/files/{file_id}: the file's metadata."""
    file = await deps(request).stores.files.get_file(
        request.path_params["file_id"], owner=principal(request).owner_filter
    )
    return JSONResponse(render_file(request, file))


def file_filter(request: Request) -> FileFilter:
    """``?name_prefix=&content_type=&created_after=&created_before=`` (ISO 8601), or 400."""
    prefix = request.query_params.get("name_prefix") or None
    if prefix is not None and len(prefix.encode()) > 255:
        raise BadRequest("name_prefix is longer than any file name (255 bytes)")
    return FileFilter(
        name_prefix=prefix,
        content_type=request.query_params.get("content_type") or None,
        created_after=timestamp(request, "created_after"),
        created_before=timestamp(request, "created_before"),
    )


async def list_files(request: Request) -> Response:
    """GET /v1/files: the caller's files (an admin's: everyone's), newest first, optionally filtered."""
    wanted = page_request(request)
    page = await deps(request).stores.files.list_files(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after, where=file_filter(request)
    )
    return page_response(request, page, lambda file: render_file(request, file))


async def download_link(
    *, files: FileStore, storage: ObjectStorage, file_id: str, owner: str | None, expires_in: int
) -> dict[str, Any]:
    """A presigned GET of the file on the public endpoint, saved under the file's name."""
    file = await files.get_file(file_id, owner=owner)
    url, expires_at = await run_in_threadpool(storage.presign_get, file.key, expires_in=expires_in, filename=file.name)
    return {"url": url, "expires_at": expires_at.isoformat(), "size": file.size, "sha256": file.sha256}


async def download(request: Request) -> Response:
    """GET /v1/files/{file_id}/download[?redirect=1]."""
    d = deps(request)
    redirect = flag(request, "redirect")
    link = await download_link(
        files=d.stores.files,
        storage=d.storage,
        file_id=request.path_params["file_id"],
        owner=principal(request).owner_filter,
        expires_in=d.settings.presign_expiry_seconds,
    )
    return link_response(link, redirect=redirect)


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
    await files.delete_file(file.id)
    try:
        await _refuse_if_in_use(file, jobs=jobs)
        await run_in_threadpool(storage.delete, file.key)
    except BaseException:
        await files.insert_file(file)
        raise
    log.info("file_deleted", file_id=file.id)
    return file


async def delete(request: Request) -> Response:
    """DELETE /v1/files/{file_id}: 204 once the record and the bytes are gone."""
    d = deps(request)
    await delete_file(
        files=d.stores.files,
        jobs=d.stores.jobs,
        storage=d.storage,
        file_id=request.path_params["file_id"],
        owner=principal(request).owner_filter,
    )
    return Response(status_code=204)
