"""How presigned uploads are cut into parts and checked (pure logic), and how expired ones are swept."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import boto3
import pytest

from services.gateway.domain.uploads import MAX_PARTS, PartRef, check_parts, file_key, plan_parts, sweep_expired
from shared.errors import Invalid, NotFound, TooLarge
from shared.models import PendingUpload, StoredFile, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores

MiB, GiB = 2**20, 2**30


def test_parts_have_the_minimum_size_while_that_keeps_them_under_ten_thousand() -> None:
    assert plan_parts(11 * MiB, min_part_size=5 * MiB) == (5 * MiB, 3)
    assert plan_parts(10 * MiB, min_part_size=5 * MiB) == (5 * MiB, 2)
    assert plan_parts(0, min_part_size=5 * MiB) == (5 * MiB, 1)


def test_huge_files_get_larger_whole_mib_parts_and_never_more_than_ten_thousand() -> None:
    for size in (100 * GiB, 1000 * GiB + 1, 4 * 2**40):
        part_size, count = plan_parts(size, min_part_size=8 * MiB)
        assert count <= MAX_PARTS and part_size % MiB == 0 and part_size * count >= size
        assert part_size * (count - 1) < size


def test_files_beyond_what_s3_can_assemble_are_too_large() -> None:
    with pytest.raises(TooLarge):
        plan_parts(MAX_PARTS * 5 * GiB + 1, min_part_size=8 * MiB)


def test_parts_must_be_all_of_them_in_order() -> None:
    def parts(*numbers: int) -> list[PartRef]:
        return [PartRef(number=n, etag=f'"e{n}"') for n in numbers]

    assert check_parts(parts(1, 2, 3), 3) == [(1, '"e1"'), (2, '"e2"'), (3, '"e3"')]
    for wrong in (None, [], parts(1, 2), parts(2, 1, 3), parts(1, 2, 2, 3), parts(1, 2, 3, 4)):
        with pytest.raises(Invalid) as caught:
            check_parts(wrong, 3)
        assert caught.value.violations[0].pointer == "/parts"


def pending(*, expires_in: timedelta, multipart_id: str | None = None) -> PendingUpload:
    upload_id = new_id()
    return PendingUpload(
        id=upload_id,
        owner="u1",
        name="x.bin",
        size=3,
        sha256="0" * 64,
        content_type="application/octet-stream",
        key=f"t/uploads/{upload_id}",
        created=utcnow(),
        expires=utcnow() + expires_in,
        multipart_id=multipart_id,
        part_size=None if multipart_id is None else 5 * MiB,
    )


def test_expired_uploads_are_swept_with_their_objects_and_parts(settings: Settings) -> None:
    storage = ObjectStorage(settings)
    storage.ensure_bucket()
    expired = pending(expires_in=timedelta(seconds=-1))
    sink = storage.sink(expired.key, content_type="application/octet-stream")
    sink.write(b"abc")
    sink.finish()
    key = f"t/uploads/{new_id()}"
    parted = pending(expires_in=timedelta(seconds=-1), multipart_id=storage.start_multipart(key, content_type="x/y"))
    parted = parted.model_copy(update={"key": key})
    fresh = pending(expires_in=timedelta(hours=1))

    async def scenario() -> int:
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            for upload in (expired, parted, fresh):
                await stores.files.insert_upload(upload)
            swept = await sweep_expired(files=stores.files, storage=storage)
            for gone in (expired, parted):
                with pytest.raises(NotFound):
                    await stores.files.get_upload(gone.id)
            assert (await stores.files.get_upload(fresh.id)).id == fresh.id
            return swept
        finally:
            await stores.close()

    try:
        assert asyncio.run(scenario()) >= 2
        with pytest.raises(NotFound):
            storage.size(expired.key)
    finally:
        storage.close()
    secret = settings.s3_secret_access_key
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=None if secret is None else secret.get_secret_value(),
    )
    try:
        assert s3.list_multipart_uploads(Bucket=settings.s3_bucket, Prefix=key).get("Uploads", []) == []
    finally:
        s3.close()


def test_the_sweep_never_deletes_the_bytes_of_a_file_recorded_under_an_expired_uploads_id(settings: Settings) -> None:
    # What a completion that recorded the file and died before forgetting the upload leaves behind.
    storage = ObjectStorage(settings)
    storage.ensure_bucket()
    upload = pending(expires_in=timedelta(seconds=-1))
    file = StoredFile(
        id=upload.id,
        owner=upload.owner,
        name=upload.name,
        size=3,
        sha256=hashlib.sha256(b"abc").hexdigest(),
        content_type=upload.content_type,
        key=file_key(upload.id),
        created=utcnow(),
    )
    for key in (upload.key, file.key):
        sink = storage.sink(key, content_type="application/octet-stream")
        sink.write(b"abc")
        sink.finish()

    async def scenario() -> None:
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            await stores.files.insert_file(file)
            await stores.files.insert_upload(upload)
            await sweep_expired(files=stores.files, storage=storage)
            with pytest.raises(NotFound):
                await stores.files.get_upload(upload.id)
            assert (await stores.files.get_file(file.id)).key == file.key
        finally:
            await stores.close()

    try:
        asyncio.run(scenario())
        assert storage.digest(file.key) == (3, file.sha256)
        with pytest.raises(NotFound):
            storage.size(upload.key)
    finally:
        storage.delete(file.key)
        storage.close()
