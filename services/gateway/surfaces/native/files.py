"""Files: uploaded through the gateway (raw body or form), listed, described, downloaded, deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.files import check_name, delete_file, download_link, receive_upload
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.forms import file_part
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, page_request, page_response
from services.gateway.plumbing.params import REDIRECT, flag, link_response, timestamp
from services.gateway.surfaces.native.schemas import FileDownload, FileOut, FilePage
from shared.errors import BadRequest, TooLarge
from shared.models import StoredFile
from shared.store.files import FileFilter

log = structlog.get_logger()

resource = Resource("files")
_FORM_SLACK = 1 * 2**20  # a form may carry this much besides the file: boundaries, headers, small fields


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


@resource.endpoint(
    "POST",
    "/files",
    summary="Upload a file: the request body is the file, streamed into object storage",
    answer=FileOut,
    status=201,
    upload=True,
    query=(Param("name", "The file's name (no '/', at most 255 bytes)"),),
)
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


@resource.endpoint("GET", "/files/{file_id}", name="file", summary="A file's metadata", answer=FileOut)
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


@resource.endpoint(
    "GET",
    "/files",
    summary="The caller's files, newest first",
    answer=FilePage,
    query=(
        *PAGED,
        Param("name_prefix", "Only names starting with this text"),
        Param("content_type", "Only this media type"),
        Param("created_after", "ISO 8601 time"),
        Param("created_before", "ISO 8601 time"),
    ),
)
async def list_files(request: Request) -> Response:
    """GET /v1/files: the caller's files (an admin's: everyone's), newest first, optionally filtered."""
    wanted = page_request(request)
    page = await deps(request).stores.files.list_files(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after, where=file_filter(request)
    )
    return page_response(request, page, lambda file: render_file(request, file))


@resource.endpoint(
    "GET",
    "/files/{file_id}/download",
    name="file_download",
    summary="A presigned download link",
    answer=FileDownload,
    query=REDIRECT,
    errors=(302,),
)
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


@resource.endpoint(
    "DELETE",
    "/files/{file_id}",
    summary="Delete a file and its bytes (409 while a queued or running job uses it)",
    answer=None,
    status=204,
    errors=(409,),
)
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
