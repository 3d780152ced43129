"""Uploaded input files: the request body streamed into S3, never held whole in memory or on disk."""

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
from services.gateway.pages import page_request, page_response
from services.gateway.state import deps
from shared.errors import BadRequest, TooLarge
from shared.models import StoredFile, new_id, utcnow
from shared.mongo import MongoStore
from shared.storage import ObjectSink, ObjectStorage

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
    store: MongoStore,
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
        await store.insert_file(record)
    except BaseException:
        await run_in_threadpool(storage.delete_prefix, sink.key)
        raise
    log.info("file_uploaded", file_id=file_id, size=record.size, sha256=record.sha256)
    return record


def render_file(request: Request, file: StoredFile) -> dict[str, Any]:
    """The public view of a file."""
    return {
        "id": file.id,
        "url": str(request.url_for("file", file_id=file.id)),
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
            store=d.store,
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
    file = await deps(request).store.get_file(request.path_params["file_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_file(request, file))


async def list_files(request: Request) -> Response:
    """GET /v1/files: the caller's files (an admin's: everyone's), newest first."""
    wanted = page_request(request)
    page = await deps(request).store.list_files(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after
    )
    return page_response(request, page, lambda file: render_file(request, file))
