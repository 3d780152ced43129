"""Files: uploaded through the gateway (raw body or form), listed, described, downloaded, deleted."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.files import DownloadLink, delete_file, download_link, receive_upload
from services.gateway.domain.quotas import stored_room
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.endpoints import Param, Resource
from services.gateway.plumbing.forms import sent_file
from services.gateway.plumbing.links import link
from services.gateway.plumbing.pages import PAGED, PageOut, page_request, paged
from services.gateway.plumbing.params import REDIRECT, flag, link_response, timestamp
from shared.errors import BadRequest
from shared.models import PendingUpload, StoredFile
from shared.store.files import FileFilter

resource = Resource("files")


class FileOut(Out):
    id: str
    url: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    created: str


class FileDownload(Out):
    url: str
    expires_at: str
    size: int
    sha256: str


class FilePage(PageOut[FileOut]):
    pass  # a docstring would become the schema's description in the OpenAPI document


def render_file(request: Request, file: StoredFile) -> FileOut:
    """The public view of a file."""
    return file_out(file, url=link(request, "file", file_id=file.id))


def file_out(file: StoredFile | PendingUpload, *, url: str) -> FileOut:
    """What the API shows of a file, or of the file a pending upload will become, found at ``url``."""
    return FileOut(
        id=file.id,
        url=url,
        owner=file.owner,
        name=file.name,
        size=file.size,
        sha256=file.sha256,
        content_type=file.content_type,
        created=file.created.isoformat(),
    )


def render_download(download: DownloadLink) -> FileDownload:
    """A file's download link as the API shows it."""
    return FileDownload(
        url=download.url, expires_at=download.expires_at.isoformat(), size=download.size, sha256=download.sha256
    )


@resource.endpoint(
    "POST",
    "/files",
    summary="Upload a file: the request body is the file, streamed into object storage",
    answer=FileOut,
    status=201,
    upload=True,
    query=(Param("name", "The file's name (no '/', at most 255 bytes)"),),
)
async def upload(request: Request) -> Reply[FileOut]:
    """POST /v1/files[?name=NAME] with the file as the raw request body or as a form's ``file`` part."""
    d = deps(request)
    sent = await sent_file(request, max_bytes=d.settings.max_upload_bytes)
    who = principal(request).user_id
    file = await receive_upload(
        files=d.stores.files,
        storage=d.storage,
        chunks=sent.chunks,
        owner=principal(request).user_id,
        name=sent.name,
        content_type=sent.content_type,
        declared_size=sent.size,
        max_bytes=d.settings.max_upload_bytes,
        room=await stored_room(owner=who, quotas=await d.quotas(who), usage=d.stores.usage),
    )
    created = render_file(request, file)
    return Reply(created, headers={"Location": created.url})


@resource.endpoint("GET", "/files/{file_id}", name="file", summary="A file's metadata", answer=FileOut)
async def describe(request: Request) -> FileOut:
    """GET /v1/files/{file_id}: the file's metadata."""
    file = await deps(request).stores.files.get_file(
        request.path_params["file_id"], owner=principal(request).owner_filter
    )
    return render_file(request, file)


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
async def list_files(request: Request) -> FilePage:
    """GET /v1/files: the caller's files (an admin's: everyone's), newest first, optionally filtered."""
    wanted = page_request(request)
    page = await deps(request).stores.files.list_files(
        owner=principal(request).owner_filter, limit=wanted.limit, after=wanted.after, where=file_filter(request)
    )
    return paged(request, page, lambda file: render_file(request, file), FilePage)


@resource.endpoint(
    "GET",
    "/files/{file_id}/download",
    name="file_download",
    summary="A presigned download link",
    answer=FileDownload,
    query=REDIRECT,
    errors=(302,),
)
async def download(request: Request) -> FileDownload | Response:
    """GET /v1/files/{file_id}/download[?redirect=1]."""
    d = deps(request)
    redirect = flag(request, "redirect")
    found = await download_link(
        files=d.stores.files,
        storage=d.storage,
        file_id=request.path_params["file_id"],
        owner=principal(request).owner_filter,
        expires_in=d.settings.presign_expiry_seconds,
    )
    return link_response(render_download(found), redirect=redirect)


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
