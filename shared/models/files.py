"""Input files: uploaded ones, and those announced for a presigned upload and not yet verified."""

from __future__ import annotations

from datetime import datetime

from shared.models.records import Record


class StoredFile(Record):
    """An uploaded input file and the S3 object that holds its bytes."""

    id: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    key: str
    created: datetime


class PendingUpload(Record):
    """A file announced for upload straight to S3 by presigned URL, not yet verified.

    Its id becomes the file's id once the bytes are checked against ``size`` and ``sha256``.
    ``multipart_id`` is S3's UploadId when the file is sent in parts of ``part_size`` bytes;
    ``completing`` is set while one request verifies it, so two cannot race.
    """

    id: str
    owner: str
    name: str
    size: int
    sha256: str
    content_type: str
    key: str
    created: datetime
    expires: datetime
    multipart_id: str | None = None
    part_size: int | None = None
    completing: datetime | None = None
