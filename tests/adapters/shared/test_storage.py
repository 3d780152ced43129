from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from shared.errors import AppError, NotFound
from shared.settings import Settings
from shared.storage import ObjectStorage, attachment
from tests.helpers.clients import open_multipart_uploads


@pytest.fixture
def storage(settings: Settings) -> Iterator[ObjectStorage]:
    store = ObjectStorage(settings)
    store.ensure_bucket()
    yield store
    store.close()


@pytest.fixture
def s3(settings: Settings) -> Iterator[Any]:
    secret = settings.s3_secret_access_key
    assert secret is not None
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value(),
    )
    yield client
    client.close()


def parts(s3: Any, settings: Settings, key: str) -> int:
    """How many parts S3 assembled the object from (1 for a plain PUT)."""
    return int(s3.head_object(Bucket=settings.s3_bucket, Key=key, PartNumber=1).get("PartsCount", 1))


def test_small_stream_becomes_one_object(storage: ObjectStorage, s3: Any, settings: Settings) -> None:
    sink = storage.sink("t/small.txt", content_type="text/plain")
    sink.write(b"hello ")
    sink.write(b"world")
    sink.finish()
    assert storage.open("t/small.txt").read() == b"hello world"
    assert parts(s3, settings, "t/small.txt") == 1
    assert sink.sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_large_stream_is_uploaded_in_parts_and_reassembled(storage: ObjectStorage, s3: Any, settings: Settings) -> None:
    data = os.urandom(3 * storage.part_size + 777)
    sink = storage.sink("t/large.bin", content_type="application/octet-stream")
    for start in range(0, len(data), 300_000):
        sink.write(data[start : start + 300_000])
    sink.finish()
    assert parts(s3, settings, "t/large.bin") == 3
    assert storage.size("t/large.bin") == len(data)
    assert hashlib.sha256(storage.open("t/large.bin").read()).hexdigest() == sink.sha256


def test_a_write_that_fills_a_part_is_sent_whole(storage: ObjectStorage, s3: Any, settings: Settings) -> None:
    sink = storage.sink("t/whole.bin", content_type="application/octet-stream")
    sink.write(os.urandom(storage.part_size + 10))
    sink.write(b"tail")
    sink.finish()
    assert storage.size("t/whole.bin") == storage.part_size + 14
    head = s3.head_object(Bucket=settings.s3_bucket, Key="t/whole.bin", PartNumber=1)
    assert head["PartsCount"] == 2 and head["ContentLength"] == storage.part_size + 10


def test_bytearray_parts_are_stored_as_written(storage: ObjectStorage, s3: Any, settings: Settings) -> None:
    # The gateway hands over each part as a bytearray, which botocore sends as it is (not through a BytesIO).
    first, second = bytearray(os.urandom(storage.part_size)), bytearray(os.urandom(storage.part_size + 3))
    sink = storage.sink("t/arrays.bin", content_type="application/octet-stream")
    sink.write(first)
    sink.write(second)
    sink.write(bytearray(b"end"))
    sink.finish()
    stored = storage.open("t/arrays.bin").read()
    assert stored == bytes(first + second) + b"end"
    assert hashlib.sha256(stored).hexdigest() == sink.sha256
    assert parts(s3, settings, "t/arrays.bin") == 3


def test_abort_leaves_no_object_and_no_parts(storage: ObjectStorage, s3: Any, settings: Settings) -> None:
    sink = storage.sink("t/aborted.bin", content_type="application/octet-stream")
    sink.write(os.urandom(storage.part_size + 1))
    sink.abort()
    with pytest.raises(NotFound):
        storage.size("t/aborted.bin")
    assert [key for key, _ in open_multipart_uploads(s3, settings.s3_bucket) if key == "t/aborted.bin"] == []


def test_a_part_that_fails_while_others_upload_fails_the_stream(
    storage: ObjectStorage, s3: Any, settings: Settings
) -> None:
    sink = storage.sink("t/broken.bin", content_type="application/octet-stream")
    sink.write(os.urandom(storage.part_size))
    (upload_id,) = [upload for key, upload in open_multipart_uploads(s3, settings.s3_bucket) if key == "t/broken.bin"]
    s3.abort_multipart_upload(Bucket=settings.s3_bucket, Key="t/broken.bin", UploadId=upload_id)
    with pytest.raises(AppError):
        for _ in range(3):  # parts sent in the background: the failure surfaces at a later write or at the end
            sink.write(os.urandom(storage.part_size))
        sink.finish()
    sink.abort()


def test_presigned_url_downloads_with_the_given_filename(storage: ObjectStorage, settings: Settings) -> None:
    sink = storage.sink("t/result.tar.gz", content_type="application/gzip")
    sink.write(b"payload")
    sink.finish()
    url, _ = storage.presign_get("t/result.tar.gz", expires_in=120, filename="job.tar.gz")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["120"]
    response = httpx.get(url)
    assert response.content == b"payload"
    assert response.headers["content-disposition"] == "attachment; filename=\"job.tar.gz\"; filename*=UTF-8''job.tar.gz"


def test_presigned_head_url_answers_the_size_without_the_bytes(storage: ObjectStorage) -> None:
    sink = storage.sink("t/head-me.bin", content_type="application/octet-stream")
    sink.write(b"12345")
    sink.finish()
    url, _ = storage.presign_head("t/head-me.bin", expires_in=60)
    response = httpx.head(url)
    assert response.status_code == 200 and response.headers["content-length"] == "5" and response.content == b""


def test_presigned_links_are_signed_for_the_public_endpoint(settings: Settings) -> None:
    public = settings.model_copy(update={"s3_public_endpoint_url": "https://files.example.org"})
    storage = ObjectStorage(public)
    try:
        head, _ = storage.presign_head("t/x.bin", expires_in=60)
        get, _ = storage.presign_get("t/x.bin", expires_in=60, filename="x.bin")
    finally:
        storage.close()
    assert urlsplit(head).netloc == urlsplit(get).netloc == "files.example.org"


def test_attachment_names_have_an_ascii_fallback_and_the_exact_utf8_name() -> None:
    assert attachment('Ström "a\\b".csv') == (
        "attachment; filename=\"Strom _a_b_.csv\"; filename*=UTF-8''Str%C3%B6m%20%22a%5Cb%22.csv"
    )
    assert attachment("日本.txt").startswith('attachment; filename=".txt"')
    assert attachment("日本").startswith('attachment; filename="download"')


def test_missing_object_is_not_found(storage: ObjectStorage) -> None:
    with pytest.raises(NotFound):
        storage.open("t/never-written")


def test_objects_are_copied_and_digested_inside_the_bucket(storage: ObjectStorage) -> None:
    sink = storage.sink("t/src.bin", content_type="application/octet-stream")
    sink.write(b"first")
    sink.finish()
    storage.copy("t/src.bin", "t/dst.bin")
    assert storage.digest("t/dst.bin") == (5, hashlib.sha256(b"first").hexdigest())
