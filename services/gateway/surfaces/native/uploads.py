"""Presigned uploads: announced, described with fresh URLs, completed once the bytes are in S3, or canceled."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.uploads import (
    CompleteRequest,
    OpenUpload,
    UploadRequest,
    cancel_upload,
    complete_upload,
    describe_upload,
    start_upload,
)
from services.gateway.plumbing.answers import Out, Reply
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body, read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.surfaces.native.files import FileOut, file_out, render_file

resource = Resource("files")


class PutTarget(Out):
    url: str
    headers: dict[str, str]


class PartTarget(Out):
    number: int
    url: str
    size: int


class UploadOut(FileOut):
    """A pending upload: the file it will become, and where to send its bytes."""

    expires_at: str
    put: PutTarget | None = Field(description="one PUT for the whole file (up to the single-PUT limit)")
    part_size: int | None
    parts: list[PartTarget] | None = Field(description="one PUT per part, for larger files")
    complete: str = Field(description="POST here once the bytes are in")


def render_upload(request: Request, opened: OpenUpload) -> UploadOut:
    """The public view of a pending upload, with where to send the bytes and how to finish."""
    upload, targets = opened.upload, opened.targets
    put = None if targets.put is None else PutTarget(url=targets.put.url, headers=targets.put.headers)
    parts = (
        None if targets.parts is None else [PartTarget(number=n.number, url=n.url, size=n.size) for n in targets.parts]
    )
    return UploadOut(
        **file_out(upload, url=link(request, "upload", upload_id=upload.id)).model_dump(),
        expires_at=upload.expires.isoformat(),
        put=put,
        part_size=targets.part_size,
        parts=parts,
        complete=link(request, "upload_complete", upload_id=upload.id),
    )


@resource.endpoint(
    "POST",
    "/uploads",
    summary="Announce a direct-to-S3 upload; answers presigned PUT URL(s)",
    answer=UploadOut,
    status=201,
    body=UploadRequest,
    errors=(429,),
)
async def create(request: Request) -> Reply[UploadOut]:
    """POST /v1/uploads {name, size, sha256, content_type?}."""
    d = deps(request)
    opened = await start_upload(
        files=d.stores.files,
        usage=d.stores.usage,
        quotas=await d.quotas(principal(request).user_id),
        storage=d.storage,
        settings=d.settings,
        request=await read_model(request, UploadRequest),
        owner=principal(request).user_id,
    )
    created = render_upload(request, opened)
    return Reply(created, headers={"Location": created.url})


@resource.endpoint(
    "GET", "/uploads/{upload_id}", name="upload", summary="A pending upload, with fresh URLs", answer=UploadOut
)
async def describe(request: Request) -> UploadOut:
    """GET /v1/uploads/{upload_id}: the pending upload with fresh URLs."""
    d = deps(request)
    opened = await describe_upload(
        files=d.stores.files,
        storage=d.storage,
        upload_id=request.path_params["upload_id"],
        owner=principal(request).owner_filter,
    )
    return render_upload(request, opened)


@resource.endpoint(
    "POST",
    "/uploads/{upload_id}/complete",
    name="upload_complete",
    summary="Verify size and sha256 in S3 and turn the upload into a file",
    answer=FileOut,
    status=201,
    body=CompleteRequest,
    body_optional=True,
    errors=(409,),
)
async def complete(request: Request) -> Reply[FileOut]:
    """POST /v1/uploads/{upload_id}/complete [{parts: [{number, etag}]}]: 201 with the file."""
    d = deps(request)
    raw = await read_body(request, 2 * 2**20)
    parts = parse_model(raw, CompleteRequest).parts if raw.strip() else None
    file = await complete_upload(
        files=d.stores.files,
        storage=d.storage,
        upload_id=request.path_params["upload_id"],
        owner=principal(request).owner_filter,
        parts=parts,
    )
    created = render_file(request, file)
    return Reply(created, headers={"Location": created.url})


@resource.endpoint(
    "DELETE", "/uploads/{upload_id}", summary="Cancel a pending upload", answer=None, status=204, errors=(409,)
)
async def cancel(request: Request) -> Response:
    """DELETE /v1/uploads/{upload_id}: 204 once its parts, object and record are gone."""
    d = deps(request)
    await cancel_upload(
        files=d.stores.files,
        storage=d.storage,
        upload_id=request.path_params["upload_id"],
        owner=principal(request).owner_filter,
    )
    return Response(status_code=204)
