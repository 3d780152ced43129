"""The S3 adapter: objects in one bucket, streamed in bounded memory, handed out by presigned URL.

boto3 is blocking: async callers go through ``run_in_threadpool``/``asyncio.to_thread``.
Presigned URLs are signed for the *public* endpoint (``S3_PUBLIC_ENDPOINT_URL``), which may
differ from the one the services use inside the network. botocore errors leave this module as
``shared.errors``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.call_counts import count_s3_requests
from shared.errors import Invalid, NotFound, Unavailable, Violation
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
# What S3 says when a client's multipart parts do not fit together: the client's mistake, not ours.
_REFUSED_PARTS = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "EntityTooLarge", "MalformedXML"}
READ_CHUNK = 1 * 2**20


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise NotFound(f"{what}: not in object storage") from exc
        if code in _REFUSED_PARTS:
            message = str(exc.response.get("Error", {}).get("Message", "")) or code
            raise Invalid(f"object storage refused {what}: {message}", [Violation("/parts", message)]) from exc
        raise Unavailable(f"object storage refused {what} ({code})") from exc
    except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: managed transfers (S3UploadFailedError, ...)
        raise Unavailable(f"object storage did not answer ({what})") from exc


def _after(seconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def attachment(filename: str) -> str:
    """A Content-Disposition that saves as ``filename``: an ASCII fallback plus the exact UTF-8 name (RFC 6266)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\%' else "_" for c in ascii_name) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _client(settings: Settings, endpoint_url: str | None) -> S3Client:
    secret = settings.s3_secret_access_key
    return s3_client(
        endpoint_url=endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=None if secret is None else secret.get_secret_value(),
    )


def s3_client(
    *, endpoint_url: str | None, region: str, access_key_id: str | None, secret_access_key: str | None
) -> S3Client:
    """A boto3 S3 client as quern configures them: path-style, a few retries, short timeouts, checksums as needed."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
            # Checksums only where S3 requires them: S3-compatible stores (MinIO, Ceph, moto) vary
            # in what they accept, and quern hashes every object itself (sha256) as it streams.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class ObjectStorage:
    """One bucket, reached through an internal client and signed for a public endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.part_size = settings.s3_part_size_mb * 2**20
        self._s3 = _client(settings, settings.s3_endpoint_url)
        count_s3_requests(self._s3, settings.quern_count_calls)
        self._presigner = _client(settings, settings.presign_endpoint_url)
        self._transfer = TransferConfig(multipart_chunksize=self.part_size, max_concurrency=4)

    def close(self) -> None:
        """Close both clients' connection pools."""
        self._s3.close()
        self._presigner.close()

    def ping(self) -> None:
        """Raise Unavailable unless the bucket answers."""
        with _translated(f"bucket {self.bucket}"):
            self._s3.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (local stacks; production buckets are provisioned)."""
        try:
            self.ping()
        except NotFound:
            with _translated(f"create bucket {self.bucket}"):
                self._s3.create_bucket(Bucket=self.bucket)

    def sink(self, key: str, *, content_type: str) -> ObjectSink:
        """A write-only stream into ``key``, uploaded part by part as it fills."""
        return ObjectSink(self._s3, self.bucket, key, content_type=content_type, part_size=self.part_size)

    def upload_file(self, path: Path, key: str, *, content_type: str) -> None:
        """Upload a local file (multipart when large)."""
        with _translated(f"upload {key}"):
            if path.stat().st_size < self._transfer.multipart_threshold:
                # One PUT: the transfer manager's threads and futures cost more than a small file's upload.
                with path.open("rb") as handle:
                    self._s3.put_object(Bucket=self.bucket, Key=key, Body=handle, ContentType=content_type)
                return
            self._s3.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=self._transfer
            )

    def upload_fileobj(self, handle: BinaryIO, key: str, *, content_type: str) -> None:
        """Upload what an open binary file holds from its current position (multipart when large)."""
        with _translated(f"upload {key}"):
            self._s3.upload_fileobj(
                handle, self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=self._transfer
            )

    def download_file(self, key: str, path: Path) -> None:
        """Download ``key`` to a local file."""
        with _translated(f"download {key}"):
            self._s3.download_file(self.bucket, key, str(path), Config=self._transfer)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader over ``key``'s bytes."""
        with _translated(f"read {key}"):
            body: Any = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return body  # type: ignore[no-any-return]  # botocore StreamingBody reads like a binary file

    def size(self, key: str) -> int:
        """The size of ``key`` in bytes, or NotFound."""
        with _translated(f"head {key}"):
            return self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]

    def read_range(self, key: str, *, start: int, length: int) -> tuple[bytes, int]:
        """Up to ``length`` bytes of ``key`` from ``start`` (negative: from the end), and its whole size."""
        size = self.size(key)
        first = max(0, size + start) if start < 0 else start
        last = min(size, first + length) - 1
        if first >= size or last < first:
            return b"", size
        with _translated(f"read {key}"):
            body: Any = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
            return bytes(body.read()), size

    def presign_get(self, key: str, *, expires_in: int, filename: str) -> tuple[str, datetime]:
        """A URL on the public endpoint that downloads ``key`` as ``filename``, and when it stops working."""
        with _translated(f"presign {key}"):
            url = self._presigner.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key, "ResponseContentDisposition": attachment(filename)},
                ExpiresIn=expires_in,
            )
        return url, _after(expires_in)

    def presign_head(self, key: str, *, expires_in: int) -> tuple[str, datetime]:
        """A URL on the public endpoint for HEAD requests on ``key`` (S3 signs the method: a GET URL will not do)."""
        with _translated(f"presign {key}"):
            url = self._presigner.generate_presigned_url(
                "head_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        return url, _after(expires_in)

    def presign_put(self, key: str, *, size: int, content_type: str, expires_in: int) -> tuple[str, datetime]:
        """A URL on the public endpoint that accepts one PUT of ``key``: ``size`` bytes of this Content-Type."""
        with _translated(f"presign {key}"):
            url = self._presigner.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
                ExpiresIn=expires_in,
            )
        return url, _after(expires_in)

    def start_multipart(self, key: str, *, content_type: str) -> str:
        """Open a multipart upload of ``key`` for a client to fill; returns S3's UploadId."""
        with _translated(f"start upload of {key}"):
            return self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)["UploadId"]

    def presign_parts(self, key: str, upload_id: str, *, sizes: list[int], expires_in: int) -> list[str]:
        """Public URLs that each accept one PUT of a part (numbered from 1) of exactly its size in ``sizes``."""
        with _translated(f"presign parts of {key}"):
            return [
                self._presigner.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": self.bucket,
                        "Key": key,
                        "UploadId": upload_id,
                        "PartNumber": number,
                        "ContentLength": size,
                    },
                    ExpiresIn=expires_in,
                )
                for number, size in enumerate(sizes, start=1)
            ]

    def uploaded_parts(self, key: str, upload_id: str) -> list[tuple[int, str]]:
        """The parts S3 holds of an open multipart upload, as (number, ETag), in order."""
        found: list[tuple[int, str]] = []
        marker = 0
        with _translated(f"list the parts of {key}"):
            while True:
                answer = self._s3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
                found += [(part["PartNumber"], part["ETag"]) for part in answer.get("Parts", [])]
                if not answer.get("IsTruncated"):
                    return found
                marker = answer["NextPartNumberMarker"]

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Assemble the client's parts, given as (number, ETag); Invalid if they do not fit together."""
        with _translated(f"complete {key}"):
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
            )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an open multipart upload and its parts (already gone is fine)."""
        try:
            with _translated(f"abort {key}"):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except NotFound:
            pass

    def digest(self, key: str) -> tuple[int, str]:
        """The size and sha256 of ``key``, read as a stream a chunk at a time."""
        sha256, size = hashlib.sha256(), 0
        with _translated(f"read {key}"):
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                for chunk in body.iter_chunks(READ_CHUNK):
                    sha256.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        return size, sha256.hexdigest()

    def copy(self, source: str, key: str) -> None:
        """Copy ``source`` (at most 5 GiB) to ``key`` inside the bucket, without the bytes passing through us."""
        with _translated(f"copy {source}"):
            self._s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source})

    def delete(self, key: str) -> None:
        """Delete one object (already gone is fine)."""
        with _translated(f"delete {key}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        deleted = 0
        with _translated(f"delete {prefix}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                keys: list[ObjectIdentifierTypeDef] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    if failed := answer.get("Errors"):
                        # S3 answers 200 and lists what it could not delete: that is not deleted.
                        first = failed[0]
                        raise Unavailable(
                            f"object storage kept {len(failed)} object(s) under {prefix} "
                            f"({first.get('Key')}: {first.get('Code')})"
                        )
                    deleted += len(keys)
        return deleted


class ObjectSink:
    """Writes a stream into one S3 object with a bounded buffer, hashing as it goes.

    Small streams become one PUT on ``finish``; larger ones a multipart upload whose part size
    grows every thousand parts, so S3's 10,000-part cap allows objects of hundreds of GiB. Up to
    ``PARTS_IN_FLIGHT`` parts upload at once while the next one fills (a write waits for the
    oldest beyond that), so memory stays at a few parts. ``abort`` leaves nothing behind. Not
    thread-safe: one writer at a time.
    """

    PARTS_IN_FLIGHT = 2

    def __init__(self, s3: S3Client, bucket: str, key: str, *, content_type: str, part_size: int) -> None:
        self.key = key
        self.size = 0
        self._s3, self._bucket, self._content_type = s3, bucket, content_type
        self._base_part_size = part_size
        self._sha256 = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sent = 0  # parts handed to the pool, done or not
        self._pool: ThreadPoolExecutor | None = None
        self._uploading: deque[Future[dict[str, Any]]] = deque()

    @property
    def sha256(self) -> str:
        """Hex digest of everything written so far."""
        return self._sha256.hexdigest()

    def write(self, data: bytes | bytearray) -> int:
        """Append bytes; uploads a part whenever one is full.

        A write that fills a part by itself is sent as it is, without copying (S3 parts may be
        any size from 5 MiB up): a ``bytearray`` written so is the sink's from then on. Small
        writes are gathered in the buffer first, and a full buffer is sent as it is.
        """
        self._sha256.update(data)
        self.size += len(data)
        if not self._buffer and len(data) >= self._part_size():
            self._upload_part(data)
            return len(data)
        self._buffer += data
        if len(self._buffer) >= self._part_size():
            part, self._buffer = self._buffer, bytearray()
            self._upload_part(part)
        return len(data)

    def flush(self) -> None:
        """Parts are uploaded as they fill; nothing to do (present for file-like callers)."""

    def finish(self) -> None:
        """Upload what is left and make the object visible."""
        last, self._buffer = self._buffer, bytearray()
        if self._upload_id is None:
            with _translated(f"put {self.key}"):
                self._s3.put_object(Bucket=self._bucket, Key=self.key, Body=bytes(last), ContentType=self._content_type)
        else:
            if last:
                self._upload_part(last)
            self._settle(0)
            parts: Any = sorted(self._parts, key=lambda part: part["PartNumber"])
            with _translated(f"complete {self.key}"):
                self._s3.complete_multipart_upload(
                    Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
                )
            self._close_pool()

    def abort(self) -> None:
        """Drop the upload and every part sent so far."""
        self._buffer.clear()
        for uploading in self._uploading:
            uploading.cancel()
        self._close_pool()  # waits for the parts already on their way, so none lands after the abort
        self._uploading.clear()
        if self._upload_id is not None:
            try:
                with _translated(f"abort {self.key}"):
                    self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
            except NotFound:
                pass  # the upload is gone already: nothing is left behind
            self._upload_id = None

    def _part_size(self) -> int:
        return self._base_part_size * (1 + self._sent // 1000)

    def _upload_part(self, data: bytes | bytearray) -> None:
        if self._upload_id is None:
            with _translated(f"upload part of {self.key}"):
                # Each part carries its CRC32 (zlib's, cheap beside the upload), so S3 checks every part's
                # bytes; without one, the S3 stand-in hashes the whole object again in Python at completion.
                created = self._s3.create_multipart_upload(
                    Bucket=self._bucket, Key=self.key, ContentType=self._content_type, ChecksumAlgorithm="CRC32"
                )
            self._upload_id = created["UploadId"]
            self._pool = ThreadPoolExecutor(self.PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self._settle(self.PARTS_IN_FLIGHT - 1)
        self._sent += 1
        assert self._pool is not None
        self._uploading.append(self._pool.submit(self._send_part, self._sent, data))

    def _send_part(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        with _translated(f"upload part of {self.key}"):
            answer = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id or "",
                PartNumber=number,
                # botocore wraps a bytes body in a BytesIO, read back in copies for the checksum and the
                # signature and sent 16 KiB at a time after an Expect: 100-continue; a bytearray (a blob to
                # botocore, not to the stubs) is hashed in place and sent in one call.
                Body=data,  # type: ignore[arg-type]
                ChecksumAlgorithm="CRC32",
            )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}

    def _settle(self, keep: int) -> None:
        """Wait until at most ``keep`` parts are still uploading; a part's failure is raised here."""
        while len(self._uploading) > keep:
            self._parts.append(self._uploading.popleft().result())

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
