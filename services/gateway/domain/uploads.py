"""Presigned uploads: large files go from the client straight to S3, and the gateway checks them after.

``POST /v1/uploads`` announces a file (name, size, sha256) and answers presigned URLs: one PUT
up to ``UPLOAD_SINGLE_PUT_MAX_BYTES``, else an S3 multipart upload with one URL per part.
``POST /v1/uploads/{id}/complete`` assembles the parts, then reads the object back from S3 in
a worker thread, a chunk at a time, and records the file only if its size and sha256 are the
declared ones; otherwise the object is deleted. The upload's id becomes the file's id.

A single PUT lands in ``uploads/<id>``, and its URL works until the upload would have expired,
so it is copied (inside S3) to ``files/<id>`` before it is hashed: the bytes checked are the
bytes kept. Multipart uploads are assembled straight into ``files/<id>``; their part URLs stop
working once the parts are assembled.

Nothing that discards an upload (a mismatch, expiry, cancel, the sweep) deletes ``files/<id>``
once a file is recorded under the id: a completion that died between recording the file and
forgetting the upload is finished by the next completion, or forgotten by the sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.files import check_name
from services.gateway.domain.quotas import Quotas, check_pending_uploads, check_stored_bytes
from shared.errors import AppError, BadRequest, Conflict, Duplicate, Invalid, NotFound, NotYet, TooLarge, Violation
from shared.models import PendingUpload, StoredFile, new_id, utcnow
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store.files import FileStore
from shared.store.usage import UsageStore

log = structlog.get_logger()
MAX_PARTS = 10_000  # S3's limit
MAX_PART_SIZE = 5 * 2**30  # S3's limit
_STALE_COMPLETION = timedelta(minutes=30)  # a completing request older than this has died; another may try
_MEDIA_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"


class UploadRequest(BaseModel):
    """The body of POST /v1/uploads."""

    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    content_type: str = Field(default="application/octet-stream", pattern=_MEDIA_TYPE)


class PartRef(BaseModel):
    """One uploaded part: its number and the ETag S3 answered to its PUT."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1, le=MAX_PARTS)
    etag: str = Field(min_length=1, max_length=256)


class CompleteRequest(BaseModel):
    """The body of POST /v1/uploads/{id}/complete (needed for multipart uploads only)."""

    model_config = ConfigDict(extra="forbid")
    parts: list[PartRef] | None = Field(default=None, max_length=MAX_PARTS)


@dataclass(frozen=True)
class PutUrl:
    """A presigned PUT of the whole file, and the headers it was signed with."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class PartUrl:
    """A presigned PUT of one part, signed for that part's exact size."""

    number: int
    url: str
    size: int


@dataclass(frozen=True)
class Targets:
    """Where the client sends an upload's bytes: one PUT, or one PUT per part of ``part_size`` bytes."""

    put: PutUrl | None
    part_size: int | None
    parts: list[PartUrl] | None


@dataclass(frozen=True)
class OpenUpload:
    """A pending upload with fresh URLs for its bytes."""

    upload: PendingUpload
    targets: Targets


def file_key(file_id: str) -> str:
    """Where a file's bytes live once verified."""
    return f"files/{file_id}"


def plan_parts(size: int, *, min_part_size: int) -> tuple[int, int]:
    """(part size, number of parts) for ``size`` bytes: parts of at least ``min_part_size``, whole MiB, <= 10,000."""
    part_size = max(min_part_size, math.ceil(size / MAX_PARTS / 2**20) * 2**20)
    if part_size > MAX_PART_SIZE:
        raise TooLarge(f"S3 cannot take {size} bytes in {MAX_PARTS} parts")
    return part_size, max(1, math.ceil(size / part_size))


def check_parts(parts: list[PartRef] | None, count: int) -> list[tuple[int, str]]:
    """The parts as S3 wants them; Invalid unless they are exactly parts 1..``count``, in order."""
    if not parts:
        raise Invalid("a multipart upload is completed with its parts", [Violation("/parts", "required")])
    numbers = [part.number for part in parts]
    if numbers != list(range(1, count + 1)):
        raise Invalid(
            f"this upload has {count} parts; list each once, in order",
            [Violation("/parts", f"expected part numbers 1 to {count} in order")],
        )
    return [(part.number, part.etag) for part in parts]


async def start_upload(
    *,
    files: FileStore,
    usage: UsageStore,
    storage: ObjectStorage,
    settings: GatewaySettings,
    request: UploadRequest,
    owner: str,
    quotas: Quotas,
) -> OpenUpload:
    """Check the announcement and the quotas, open the S3 upload (multipart when large), record it as pending,
    sign its URLs. The stored-bytes quota is checked here, on the announced size, not again at completion.
    """
    try:
        name = check_name(request.name)
    except BadRequest as exc:
        raise Invalid("the upload request is malformed", [Violation("/name", exc.detail)]) from None
    if request.size > settings.max_upload_bytes:
        raise TooLarge(f"uploads are limited to {settings.max_upload_bytes} bytes")
    await check_stored_bytes(request.size, owner=owner, quotas=quotas, usage=usage)
    await check_pending_uploads(owner=owner, quotas=quotas, files=files)
    upload_id, created = new_id(), utcnow()
    key, content_type = f"uploads/{upload_id}", request.content_type.lower()
    multipart_id, part_size = None, None
    if request.size > settings.upload_single_put_max_bytes:
        key = file_key(upload_id)  # part URLs die when the parts are assembled: nothing can change it later
        part_size, _ = plan_parts(request.size, min_part_size=storage.part_size)
        multipart_id = await run_in_threadpool(storage.start_multipart, key, content_type=content_type)
    upload = PendingUpload(
        id=upload_id,
        owner=owner,
        name=name,
        size=request.size,
        sha256=request.sha256.lower(),
        content_type=content_type,
        key=key,
        created=created,
        expires=created + timedelta(seconds=settings.upload_expiry_seconds),
        multipart_id=multipart_id,
        part_size=part_size,
    )
    try:
        await files.insert_upload(upload)
    except BaseException:
        if multipart_id is not None:
            await run_in_threadpool(storage.abort_multipart, key, multipart_id)
        raise
    log.info("upload_started", upload_id=upload.id, size=upload.size, multipart=multipart_id is not None)
    return OpenUpload(upload, await run_in_threadpool(presigned_urls, storage, upload))


def presigned_urls(storage: ObjectStorage, upload: PendingUpload) -> Targets:
    """Where the client sends the bytes: a PUT, or one PUT per part; valid until the upload expires.

    Each URL is signed for its exact Content-Length, so S3 itself refuses a PUT of another size.
    """
    expires_in = max(1, int((upload.expires - utcnow()).total_seconds()))
    if upload.multipart_id is None or upload.part_size is None:
        url, _ = storage.presign_put(
            upload.key, size=upload.size, content_type=upload.content_type, expires_in=expires_in
        )
        return Targets(put=PutUrl(url, {"Content-Type": upload.content_type}), part_size=None, parts=None)
    _, count = plan_parts(upload.size, min_part_size=upload.part_size)
    sizes = [min(upload.part_size, upload.size - n * upload.part_size) for n in range(count)]
    urls = storage.presign_parts(upload.key, upload.multipart_id, sizes=sizes, expires_in=expires_in)
    parts = [PartUrl(n, url, size) for n, (url, size) in enumerate(zip(urls, sizes, strict=True), 1)]
    return Targets(put=None, part_size=upload.part_size, parts=parts)


async def describe_upload(*, files: FileStore, storage: ObjectStorage, upload_id: str, owner: str | None) -> OpenUpload:
    """A pending upload, with URLs for its bytes signed afresh."""
    upload = await files.get_upload(upload_id, owner=owner)
    return OpenUpload(upload, await run_in_threadpool(presigned_urls, storage, upload))


async def discard_upload(upload: PendingUpload, *, files: FileStore, storage: ObjectStorage) -> None:
    """Leave nothing of an upload behind: its open parts, its object, its record; never a recorded file's bytes.

    A completion that recorded the file and died before forgetting the upload (or whose record
    went in although the call failed) leaves the upload pending: its ``files/<id>`` is a file's now.
    """
    keys = {upload.key, file_key(upload.id)}
    if upload.id in await files.get_files([upload.id]):
        keys.discard(file_key(upload.id))
    elif upload.multipart_id is not None:
        await run_in_threadpool(storage.abort_multipart, upload.key, upload.multipart_id)
    for key in keys:
        await run_in_threadpool(storage.delete, key)
    await files.delete_upload(upload.id)


async def claim_pending(upload_id: str, owner: str | None, *, files: FileStore) -> PendingUpload:
    """Hold the pending upload for this request alone; Conflict once it is a file, NotYet while another holds it."""
    upload = await files.claim_upload(upload_id, owner=owner, stale_before=utcnow() - _STALE_COMPLETION)
    if upload is not None:
        return upload
    try:
        await files.get_upload(upload_id, owner=owner)
    except NotFound:
        try:
            file = await files.get_file(upload_id, owner=owner)
        except NotFound:
            raise NotFound(f"no pending upload {upload_id}") from None
        raise Conflict(f"upload {upload_id} is complete already: it is file {file.id}") from None
    raise NotYet(f"upload {upload_id} is being completed by another request", retry_after=2)


async def cancel_upload(*, files: FileStore, storage: ObjectStorage, upload_id: str, owner: str | None) -> None:
    """Cancel a pending upload: its open parts, its object and its record are deleted."""
    upload = await claim_pending(upload_id, owner, files=files)
    await discard_upload(upload, files=files, storage=storage)
    log.info("upload_cancelled", upload_id=upload.id)


async def _assemble(storage: ObjectStorage, upload: PendingUpload, parts: list[PartRef] | None) -> int:
    """Complete the multipart upload unless done already; the object's size, or Conflict if nothing came."""
    try:
        return await run_in_threadpool(storage.size, upload.key)
    except NotFound:
        if upload.multipart_id is None or upload.part_size is None:
            raise NotYet(f"nothing was uploaded yet: PUT the file to the presigned URL of upload {upload.id}") from None
    _, count = plan_parts(upload.size, min_part_size=upload.part_size)
    try:
        await run_in_threadpool(storage.complete_multipart, upload.key, upload.multipart_id, check_parts(parts, count))
    except NotFound:
        raise Conflict(f"the parts of upload {upload.id} are not in object storage") from None
    return await run_in_threadpool(storage.size, upload.key)


async def _record(upload: PendingUpload, *, files: FileStore) -> StoredFile:
    """Record the verified file (or find it, recorded by an earlier attempt that died before cleaning up)."""
    file = StoredFile(
        id=upload.id,
        owner=upload.owner,
        name=upload.name,
        size=upload.size,
        sha256=upload.sha256,
        content_type=upload.content_type,
        key=file_key(upload.id),
        created=utcnow(),
    )
    try:
        await files.insert_file(file)
    except Duplicate:
        return await files.get_file(upload.id)
    except BaseException:
        await files.release_upload(upload.id)
        raise
    return file


async def complete_upload(
    *, files: FileStore, storage: ObjectStorage, upload_id: str, owner: str | None, parts: list[PartRef] | None
) -> StoredFile:
    """Verify what the client sent against what it announced, then turn the upload into a file.

    A mismatch deletes the object and the upload (422); an expired upload is discarded (409);
    anything else that fails leaves the upload as it was, to be completed again. An upload whose
    file an earlier completion recorded (and died before forgetting the upload) answers that file.
    """
    upload = await claim_pending(upload_id, owner, files=files)
    recorded = (await files.get_files([upload.id])).get(upload.id)
    if recorded is not None:  # an earlier completion recorded it and died before cleaning up: finish that
        await _forget(upload, recorded, files=files, storage=storage)
        return recorded
    if upload.expires <= utcnow():
        await discard_upload(upload, files=files, storage=storage)
        raise Conflict(f"upload {upload.id} expired at {upload.expires.isoformat()}; start a new one")
    key, sha256 = file_key(upload.id), ""
    try:
        size = await _assemble(storage, upload, parts)
        if size == upload.size:
            if upload.key != key:  # hash the copy the PUT URL cannot reach, so what is checked is what is kept
                await run_in_threadpool(storage.copy, upload.key, key)
            size, sha256 = await run_in_threadpool(storage.digest, key)
    except BaseException:
        await files.release_upload(upload.id)
        raise
    problems = []
    if size != upload.size:
        problems.append(Violation("/size", f"{upload.size} bytes were announced but {size} arrived"))
    elif sha256 != upload.sha256:
        problems.append(Violation("/sha256", f"{upload.sha256} was announced but the bytes hash to {sha256}"))
    if problems:
        await discard_upload(upload, files=files, storage=storage)
        log.info("upload_rejected", upload_id=upload.id, reason=problems[0].pointer)
        raise Invalid(f"the uploaded file is not the one announced ({problems[0].pointer[1:]} differs)", problems)
    file = await _record(upload, files=files)
    await _forget(upload, file, files=files, storage=storage)
    log.info("upload_completed", file_id=file.id, size=file.size, sha256=file.sha256)
    return file


async def _forget(upload: PendingUpload, file: StoredFile, *, files: FileStore, storage: ObjectStorage) -> None:
    """Forget the upload that became ``file``, and its PUT's object (the file's bytes are elsewhere)."""
    await files.delete_upload(upload.id)
    if upload.key != file.key:
        try:
            await run_in_threadpool(storage.delete, upload.key)
        except AppError as exc:  # the file is safe; only a stray copy remains for the bucket's lifecycle rule
            log.warning("upload_object_left", upload_id=upload.id, key=upload.key, detail=exc.detail)


async def sweep_expired(*, files: FileStore, storage: ObjectStorage, limit: int = 100) -> int:
    """Discard uploads that expired unfinished (their parts, objects and records); how many were."""
    swept = 0
    now = utcnow()
    for expired in await files.expired_uploads(before=now, stale_before=now - _STALE_COMPLETION, limit=limit):
        upload = await files.claim_upload(expired.id, owner=None, stale_before=now - _STALE_COMPLETION)
        if upload is not None:  # else another gateway got to it first
            await discard_upload(upload, files=files, storage=storage)
            log.info("upload_expired", upload_id=upload.id)
            swept += 1
    return swept
