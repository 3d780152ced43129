"""Presigned uploads: announced, described with fresh URLs, completed once the bytes are in S3, or canceled."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.uploads import (
    CompleteRequest,
    UploadRequest,
    claim_pending,
    complete_upload,
    discard_upload,
    presigned_urls,
    start_upload,
)
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import parse_model, read_body, read_model
from services.gateway.plumbing.endpoints import Resource
from services.gateway.plumbing.links import link
from services.gateway.surfaces.native.files import render_file
from services.gateway.surfaces.native.schemas import FileOut, UploadOut
from shared.models import PendingUpload

log = structlog.get_logger()

resource = Resource("files")


def render_upload(request: Request, upload: PendingUpload, urls: dict[str, Any]) -> dict[str, Any]:
    """The public view of a pending upload, with where to send the bytes and how to finish."""
    url = link(request, "upload", upload_id=upload.id)
    return {
        "id": upload.id,
        "url": url,
        "owner": upload.owner,
        "name": upload.name,
        "size": upload.size,
        "sha256": upload.sha256,
        "content_type": upload.content_type,
        "created": upload.created.isoformat(),
        "expires_at": upload.expires.isoformat(),
        **urls,
        "complete": link(request, "upload_complete", upload_id=upload.id),
    }


@resource.endpoint(
    "POST",
    "/uploads",
    summary="Announce a direct-to-S3 upload; answers presigned PUT URL(s)",
    answer=UploadOut,
    status=201,
    body=UploadRequest,
)
async def create(request: Request) -> Response:
    """POST /v1/uploads {name, size, sha256, content_type?}."""
    d = deps(request)
    upload = await start_upload(
        files=d.stores.files,
        storage=d.storage,
        settings=d.settings,
        request=await read_model(request, UploadRequest),
        owner=principal(request).user_id,
    )
    urls = await run_in_threadpool(presigned_urls, d.storage, upload)
    body = render_upload(request, upload, urls)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


@resource.endpoint(
    "GET", "/uploads/{upload_id}", name="upload", summary="A pending upload, with fresh URLs", answer=UploadOut
)
async def describe(request: Request) -> Response:
    """GET /v1/uploads/{upload_id}: the pending upload with fresh URLs."""
    d = deps(request)
    upload = await d.stores.files.get_upload(request.path_params["upload_id"], owner=principal(request).owner_filter)
    return JSONResponse(render_upload(request, upload, await run_in_threadpool(presigned_urls, d.storage, upload)))


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
async def complete(request: Request) -> Response:
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
    body = render_file(request, file)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


@resource.endpoint(
    "DELETE", "/uploads/{upload_id}", summary="Cancel a pending upload", answer=None, status=204, errors=(409,)
)
async def cancel(request: Request) -> Response:
    """DELETE /v1/uploads/{upload_id}: 204 once its parts, object and record are gone."""
    d = deps(request)
    upload = await claim_pending(
        request.path_params["upload_id"], principal(request).owner_filter, files=d.stores.files
    )
    await discard_upload(upload, files=d.stores.files, storage=d.storage)
    log.info("upload_cancelled", upload_id=upload.id)
    return Response(status_code=204)
