# Generated from quern/_async/files.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""Uploaded files: ``client.files``, with the upload flow through the API.

Small files are streamed to ``POST /v1/files``. Above ``direct_above`` bytes the file is hashed,
announced with ``POST /v1/uploads``, PUT to the presigned URLs part by part (``quern.transfers``
moves the bytes) and completed; the gateway checks size and sha256 against S3.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quern import transfers
from quern._sync.connection import Connection
from quern.errors import Conflict, NotFound, NotYet, Unreachable
from quern.models import File, Link
from quern.transfers import TRANSFER_TIMEOUT, Meter, PathLike, ProgressCallback, read_range


def completion_pending(exc: Exception) -> float:
    """How long to look for the file after a completion failed with ``exc``: its answer may just have been lost."""
    if isinstance(exc, Unreachable | NotYet):
        return 900.0  # the gateway may still be checking a large file's sha256
    return 0.0  # completed already (or expired): one look says which


class Files:
    """Uploaded files: ``client.files``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def upload(
        self,
        path: PathLike,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        direct_above: int = transfers.DIRECT_ABOVE,
    ) -> File:
        """Upload a local file: streamed through the gateway, or straight to S3 (presigned) above ``direct_above``."""
        source = Path(path)
        stat = source.stat()
        size, name = stat.st_size, name or source.name
        if size <= direct_above:
            meter = Meter(size, progress)
            answer = self._connection.request(
                "POST",
                "/v1/files",
                params={"name": name},
                body=lambda: read_range(source, 0, size, meter),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=TRANSFER_TIMEOUT,
            )
            return File.model_validate(answer.json())
        sha256 = transfers.sha256_of(source)
        announced = self._connection.request("POST", "/v1/uploads", json={"name": name, "size": size, "sha256": sha256})
        pending = announced.json()
        meter = Meter(size, progress)
        completion = transfers.put_presigned(pending, source, size, meter)
        try:
            done = self._connection.request(
                "POST", f"/v1/uploads/{pending['id']}/complete", json=completion, timeout=TRANSFER_TIMEOUT
            )
        except (Unreachable, Conflict) as exc:
            # The answer was lost (or another call is completing it): the upload's id becomes the file's id.
            return self._wait_for_file(pending["id"], exc)
        return File.model_validate(done.json())

    def _wait_for_file(self, file_id: str, cause: Exception) -> File:
        """The file a completion turned the upload into, once the gateway has checked it; ``cause`` if it never does."""
        deadline = time.monotonic() + completion_pending(cause)
        while True:
            try:
                return self.get(file_id)
            except (NotFound, Unreachable):
                pass
            if time.monotonic() >= deadline:
                raise cause
            time.sleep(2)

    def list(self, **filters: Any) -> Iterator[File]:
        """The caller's files, newest first (``name_prefix``, ``content_type``, ``created_after``...)."""
        return self._connection.pages(File, "/v1/files", **filters)

    def get(self, file_id: str) -> File:
        return self._connection.get(File, f"/v1/files/{file_id}")

    def link(self, file_id: str) -> Link:
        """A presigned download URL."""
        return self._connection.get(Link, f"/v1/files/{file_id}/download")

    def download(self, file_id: str, dest: PathLike, *, progress: ProgressCallback | None = None) -> Path:
        """Save the file at ``dest`` (a directory: under its name), checking its sha256."""
        described, link = self.get(file_id), self.link(file_id)
        return transfers.download(link, dest, name=described.name, progress=progress)

    def delete(self, file_id: str) -> None:
        self._connection.delete(f"/v1/files/{file_id}")
