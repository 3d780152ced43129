"""The files page (list, upload with progress, delete) and the direct-to-S3 uploads its script makes for big files.

Files up to the single-PUT limit go through the gateway (``POST /ui/files``); bigger ones are
announced (``POST /ui/uploads``), their parts PUT by the browser to presigned URLs, and completed
(``POST /ui/uploads/{id}/complete``), as with the API's presigned uploads. The browser does not
send the parts' ETags: a bucket's CORS rule would have to expose them, so the gateway lists the
parts S3 holds instead; the size and sha256 check that follows is what vouches for the bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.files import delete_file
from services.gateway.domain.uploads import PartRef, UploadRequest, cancel_upload, complete_upload, start_upload
from services.gateway.plumbing.auth import principal
from services.gateway.plumbing.bodies import read_model
from services.gateway.plumbing.problems import status_of
from services.gateway.surfaces.ui.templates import page
from shared.errors import NotYet

PAGE_SIZE = 50


async def files_page(request: Request, *, message: str | None = None, status: int = 200) -> Response:
    """The user's files, newest first, a page at a time; ``message`` says what an action could not do."""
    d, after = deps(request), request.query_params.get("after") or None
    found = await d.stores.files.list_files(owner=principal(request).user_id, limit=PAGE_SIZE, after=after)
    return page(
        request,
        "files.html",
        status=status,
        files=found.items,
        next_after=found.next_after,
        first=after is not None,
        message=message,
        single_put_max=d.settings.upload_single_put_max_bytes,
    )


async def list_files(request: Request) -> Response:
    """GET /ui/files[?after=ID]."""
    return await files_page(request)


async def unless_in_use(
    request: Request, removal: Awaitable[object], *, then: str, otherwise: Callable[[str, int], Awaitable[Response]]
) -> Response:
    """Await ``removal``, then go to the page named ``then``; while a job needs the thing, ``otherwise`` says why."""
    try:
        await removal
    except NotYet as exc:
        return await otherwise(exc.detail, status_of(exc))
    return RedirectResponse(request.url_for(then).path, status_code=303)


async def delete(request: Request) -> Response:
    """POST /ui/files/{file_id}/delete: the files page; while a job needs the file, the page with why (409)."""
    d = deps(request)
    removal = delete_file(
        files=d.stores.files,
        jobs=d.stores.jobs,
        storage=d.storage,
        file_id=request.path_params["file_id"],
        owner=principal(request).user_id,
    )
    return await unless_in_use(
        request, removal, then="ui:files", otherwise=lambda why, status: files_page(request, message=why, status=status)
    )


async def start(request: Request) -> Response:
    """POST /ui/uploads {name, size, sha256, content_type?}: the upload's id and one presigned URL per part (JSON)."""
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
    targets = opened.targets
    put = None if targets.put is None else {"url": targets.put.url, "headers": targets.put.headers}
    parts = [{"number": p.number, "url": p.url, "size": p.size} for p in targets.parts or []]
    return JSONResponse({"id": opened.upload.id, "put": put, "parts": parts}, status_code=201)


async def complete(request: Request) -> Response:
    """POST /ui/uploads/{upload_id}/complete: the file (JSON) once its size and sha256 are the announced ones."""
    d, owner = deps(request), principal(request).user_id
    upload = await d.stores.files.get_upload(request.path_params["upload_id"], owner=owner)
    parts = None
    if upload.multipart_id is not None:
        held = await run_in_threadpool(d.storage.uploaded_parts, upload.key, upload.multipart_id)
        parts = [PartRef(number=number, etag=etag) for number, etag in held]
    file = await complete_upload(files=d.stores.files, storage=d.storage, upload_id=upload.id, owner=owner, parts=parts)
    return JSONResponse({"id": file.id, "name": file.name, "size": file.size}, status_code=201)


async def cancel(request: Request) -> Response:
    """POST /ui/uploads/{upload_id}/cancel: a failed upload leaves no parts, object or record behind (204)."""
    d = deps(request)
    await cancel_upload(
        files=d.stores.files,
        storage=d.storage,
        upload_id=request.path_params["upload_id"],
        owner=principal(request).user_id,
    )
    return Response(status_code=204)
