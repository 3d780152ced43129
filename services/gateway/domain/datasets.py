"""Datasets: an uploaded bundle checked member by member, then stored one S3 object per member.

Nothing is stored unless every member passes ``inspect_bundle``. The bundle is downloaded into
a temporary directory under ``SCRATCH_DIR`` that is removed whatever happens, and a failure
after some members were uploaded deletes everything under the dataset's prefix. A gateway that
dies part-way cannot: the draft it recorded before storing anything lets the scheduler's sweep
delete those objects after ``DRAFT_GRACE_SECONDS``.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from services.gateway.domain.bundles import BLOCK, MAX_VIOLATIONS, Bundle, BundleLimits, inspect_bundle, iter_members
from services.gateway.domain.quotas import Quotas, check_stored_bytes
from shared.errors import AppError, Conflict, Duplicate, Invalid, NotYet, TooLarge, Unavailable, Violation
from shared.models import Dataset, DatasetMember, StoredFile, dataset_prefix, new_id, utcnow
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store.datasets import DatasetStore, DatasetUpdate
from shared.store.files import FileStore
from shared.store.jobs import JobStore
from shared.store.usage import UsageStore

log = structlog.get_logger()
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,50}$")]
Description = Annotated[str, StringConstraints(max_length=10_000)]
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255
MAX_LISTING_BYTES = 12 * 2**20  # a dataset is one Mongo document, which is limited to 16 MiB
# Far longer than storing the largest bundle takes: a draft older than this was left by a gateway that died.
DRAFT_GRACE_SECONDS = 6 * 3600


class DatasetRequest(BaseModel):
    """The body of POST /v1/datasets."""

    model_config = ConfigDict(extra="forbid")
    file_id: str = Field(min_length=1, max_length=64)
    name: Name
    description: Description = ""
    tags: list[Tag] = Field(default=[], max_length=20)


class DatasetChanges(BaseModel):
    """The body of PATCH /v1/datasets/{id}: only what is sent changes."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Description | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)


def bundle_limits(settings: GatewaySettings) -> BundleLimits:
    """The bundle limits this gateway is configured with."""
    return BundleLimits(
        max_members=settings.dataset_max_members,
        max_member_bytes=settings.dataset_max_bytes,
        max_total_bytes=settings.dataset_max_bytes,
        max_ratio=settings.dataset_max_ratio,
        ratio_after_bytes=settings.dataset_ratio_after_bytes,
    )


def store_members(storage: ObjectStorage, path: Path, bundle: Bundle, prefix: str) -> None:
    """Stream every member of a checked bundle into ``prefix`` + its path, in one pass over the bundle."""
    with closing(iter_members(path, bundle)) as members:
        for member, data in members:
            content_type = mimetypes.guess_type(member.path)[0] or "application/octet-stream"
            sink = storage.sink(prefix + member.path, content_type=content_type)
            try:
                while block := data.read(BLOCK):
                    sink.write(block)
                if sink.sha256 != member.sha256:
                    raise Conflict(f"{member.path} changed while the bundle was stored")
                sink.finish()
            except BaseException:
                sink.abort()
                raise


def check_storable(bundle: Bundle, prefix: str) -> None:
    """Refuse paths an S3 key (1,024 bytes) or a file system (255 per name) cannot hold, or too many to record."""
    violations = []
    for member in bundle.members:
        if len((prefix + member.path).encode()) > MAX_KEY_BYTES:
            detail = f"the path is longer than {MAX_KEY_BYTES - len(prefix)} bytes"
        elif any(len(part.encode()) > MAX_NAME_BYTES for part in member.path.split("/")):
            detail = f"a name in the path is longer than {MAX_NAME_BYTES} bytes"
        else:
            continue
        violations.append(Violation(f"/members/{member.path}", detail))
    if violations:
        first = violations[0]
        raise Invalid(f"{first.pointer}: {first.detail}", violations[:MAX_VIOLATIONS])
    # Each member costs its path plus about 120 bytes of BSON (size, sha256, field names).
    if sum(len(member.path.encode()) + 120 for member in bundle.members) > MAX_LISTING_BYTES:
        raise TooLarge("the bundle's list of members is too long to record; split it into several datasets")


def checked_tags(tags: list[str]) -> list[str]:
    """Tags as a dataset keeps them: each once, sorted."""
    return sorted(set(tags))


async def create_dataset(
    *,
    files: FileStore,
    datasets: DatasetStore,
    storage: ObjectStorage,
    settings: GatewaySettings,
    request: DatasetRequest,
    owner: str,
    usage: UsageStore,
    quotas: Quotas,
) -> Dataset:
    """Check the owner's bundle file member by member and the stored-bytes quota, store each member, then record
    the dataset.
    """
    file: StoredFile = await files.get_file(request.file_id, owner=owner)
    # Headers take at most a few KiB a member, so a larger file cannot unpack within the limit:
    # refuse it before it takes room in the scratch directory.
    if file.size > settings.dataset_max_bytes + settings.dataset_max_members * 4096 + 2**20:
        raise TooLarge(f"the bundle is larger than a dataset may unpack to ({settings.dataset_max_bytes} bytes)")
    if await datasets.dataset_name_taken(owner, request.name):
        raise Duplicate(f"you already have a dataset named {request.name!r}")
    dataset_id = new_id()
    prefix = dataset_prefix(dataset_id)
    scratch = Path(await run_in_threadpool(tempfile.mkdtemp, prefix="quern-dataset-", dir=settings.scratch_dir))
    try:
        path = scratch / "bundle"
        await run_in_threadpool(storage.download_file, file.key, path)
        bundle = await run_in_threadpool(inspect_bundle, path, file.name, bundle_limits(settings))
        check_storable(bundle, prefix)
        await check_stored_bytes(sum(m.size for m in bundle.members), owner=owner, quotas=quotas, usage=usage)
        now = utcnow()
        dataset = Dataset(
            id=dataset_id,
            owner=owner,
            name=request.name,
            description=request.description,
            tags=checked_tags(request.tags),
            kind=bundle.kind,
            members=[DatasetMember(path=m.path, size=m.size, sha256=m.sha256) for m in bundle.members],
            metadata=bundle.metadata,
            source_file=file.id,
            created=now,
            updated=now,
        )
        await datasets.begin_draft(dataset_id, prefix)
        try:
            await run_in_threadpool(store_members, storage, path, bundle, prefix)
            if not await datasets.seal_draft(dataset_id):
                raise Unavailable(f"storing dataset {dataset_id} took too long; it was discarded, try again")
            await datasets.insert_dataset(dataset)
        except BaseException:
            await run_in_threadpool(storage.delete_prefix, prefix)
            await datasets.end_draft(dataset_id)
            raise
        await _end_draft(datasets, dataset_id)
    finally:
        await run_in_threadpool(shutil.rmtree, scratch, True)
    log.info("dataset_created", dataset_id=dataset.id, members=len(dataset.members), size=dataset.size)
    return dataset


async def _end_draft(datasets: DatasetStore, dataset_id: str) -> None:
    """Forget the recorded dataset's draft; if that fails the sweep finds the dataset and forgets it then."""
    try:
        await datasets.end_draft(dataset_id)
    except AppError as exc:
        log.warning("dataset_draft_left", dataset_id=dataset_id, detail=exc.detail)


async def sweep_abandoned_drafts(
    *, datasets: DatasetStore, storage: ObjectStorage, grace_seconds: float = DRAFT_GRACE_SECONDS, limit: int = 100
) -> int:
    """Delete the objects of datasets whose gateway died while creating them; how many were.

    A draft still ``storing`` after ``grace_seconds`` is taken from its creator (which fails
    at its end, if alive) and its objects deleted; one left ``recording`` has its objects deleted
    only if its dataset was not recorded.
    """
    before, swept = utcnow() - timedelta(seconds=grace_seconds), 0
    for draft in await datasets.abandoned_drafts(before=before, limit=limit):
        if draft.state == "recording" and draft.id in await datasets.get_datasets([draft.id]):
            await datasets.end_draft(draft.id)
            continue
        if await datasets.take_draft(draft, before=before):  # else another sweeper, or the creator, moved it on
            deleted = await run_in_threadpool(storage.delete_prefix, draft.prefix)
            log.warning("dataset_draft_swept", dataset_id=draft.id, objects=deleted)
            swept += 1
    return swept


async def update_dataset(
    *, datasets: DatasetStore, dataset_id: str, changes: DatasetChanges, owner: str | None
) -> Dataset:
    """Apply the fields that were sent; a name the owner already uses is a Conflict."""
    fields = changes.model_dump(exclude_unset=True)
    nulls = [Violation(f"/{name}", "may be left out, but not null") for name in sorted(fields) if fields[name] is None]
    if nulls:
        raise Invalid("the changes are malformed", nulls)
    dataset = await datasets.get_dataset(dataset_id, owner=owner)
    if changes.name is not None and changes.name != dataset.name:
        if await datasets.dataset_name_taken(dataset.owner, changes.name):
            raise Duplicate(f"there is already a dataset named {changes.name!r}")
    if not fields:
        return dataset
    update = DatasetUpdate(
        name=changes.name,
        description=changes.description,
        tags=None if changes.tags is None else checked_tags(changes.tags),
    )
    return await datasets.update_dataset(dataset.id, update, owner=owner)


async def delete_dataset(
    *, datasets: DatasetStore, jobs: JobStore, storage: ObjectStorage, dataset_id: str, owner: str | None
) -> None:
    """Delete the dataset's objects and record, unless a QUEUED or RUNNING job reads it."""
    dataset = await datasets.get_dataset(dataset_id, owner=owner)
    if await jobs.dataset_in_use(dataset.id):
        raise NotYet(f"dataset {dataset.id} is an input of a job that has not finished", retry_after=10)
    await run_in_threadpool(storage.delete_prefix, dataset.prefix)
    await datasets.delete_dataset(dataset)
    log.info("dataset_deleted", dataset_id=dataset.id)
