"""The S3 buckets TES tasks name in ``s3://`` URLs: reached with the ``TES_S3_*`` credentials, never quern's own.

Every bucket is checked against ``TES_S3_BUCKETS`` again before it is read or written (the
gateway checked at submission; the setting may have changed since). A missing object is
``NotFound``, a refusal ``Invalid`` (the task's failure), and only a bucket that does not
answer (or answers 5xx) is ``Unavailable``, which the run rides out like an outage of its own S3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import Invalid, NotFound, Unavailable
from shared.models.tasks import TaskPolicy
from shared.settings import Settings
from shared.storage import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


@contextmanager
def _translated(url: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _MISSING:
            raise NotFound(f"{url}: no such object") from exc
        if status >= 500:
            raise Unavailable(f"{url}: the bucket's store failed ({code})") from exc
        raise Invalid(f"{url}: refused ({code or status})") from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise Unavailable(f"{url}: the bucket's store did not answer") from exc


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise Invalid(f"{url}: not an s3://bucket/key URL")
    return parts.netloc, parts.path.lstrip("/")


class TaskBuckets:
    """One client on the TES buckets' endpoint, and the policy saying which buckets tasks may use."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.tes_s3_secret_access_key
        self.policy: TaskPolicy = settings.task_policy()
        self._s3: S3Client = s3_client(
            endpoint_url=settings.tes_s3_endpoint_url,
            region=settings.tes_s3_region,
            access_key_id=settings.tes_s3_access_key_id,
            secret_access_key=None if secret is None else secret.get_secret_value(),
        )
        self._transfer = TransferConfig(max_concurrency=4)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._s3.close()

    def allowed(self, url: str) -> tuple[str, str]:
        """(bucket, key) of ``url``, once its bucket is among those allowed."""
        bucket, key = split_url(url)
        if not self.policy.allows_bucket(bucket):
            raise Invalid(f"{url}: bucket {bucket} is not among those TES tasks may use (TES_S3_BUCKETS)")
        return bucket, key

    def download(self, url: str, path: Path) -> None:
        """Download one object to ``path`` (its directory is made)."""
        bucket, key = self.allowed(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _translated(url):
            self._s3.download_file(bucket, key, str(path), Config=self._transfer)

    def download_tree(self, url: str, directory: Path) -> int:
        """Download every object under ``url`` (a prefix) into ``directory`` at its relative key; how many."""
        bucket, key = self.allowed(url)
        prefix = key.rstrip("/") + "/" if key else ""
        directory.mkdir(parents=True, exist_ok=True)
        count = 0
        with _translated(url):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix) :]
                    if not relative or relative.endswith("/"):
                        continue  # a "folder" marker
                    target = (directory / relative).resolve()
                    if not target.is_relative_to(directory.resolve()):
                        raise Invalid(f"{url}: object {item['Key']} would be staged outside {directory.name}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._s3.download_file(bucket, item["Key"], str(target), Config=self._transfer)
                    count += 1
        return count

    def upload(self, handle: BinaryIO, url: str) -> None:
        """Upload what ``handle`` holds to ``url``."""
        bucket, key = self.allowed(url)
        with _translated(url):
            self._s3.upload_fileobj(handle, bucket, key, Config=self._transfer)
