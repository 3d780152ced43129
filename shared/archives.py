"""A job's results as one tar.gz: the format the runner and the results service both write.

The runner writes the archive of a small run from the files on its disk; the results service
streams a bigger one from S3. Both go through ``write_archive``, so the bytes depend only on the
job and its files, never on who wrote them: fixed gzip mtime, member times from the job's end,
members in a fixed order. Layout::

    <job_id>/outputs/...      the files the app produced
    <job_id>/logs/stdout.txt, stderr.txt
    <job_id>/manifest.json    written last, once every member's sha256 is known

A selective archive (``include`` globs) holds only the outputs the globs match, with the logs and
a manifest listing exactly what is inside (and the globs, as ``include``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from shared.errors import Conflict
from shared.models import Job, OutputFile

COMPRESS_LEVEL = 6


class Sink(Protocol):
    """Where the compressed bytes go (an S3 object's ``ObjectSink``)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class Member:
    """One file of an archive: its path under ``<job_id>/``, size, how to open it, and the sha256 it must have.

    ``sha256`` is what the run recorded for an output (None for a log): other bytes are a Conflict.
    """

    path: str
    size: int
    content_type: str
    open: Callable[[], BinaryIO]
    sha256: str | None = None


def output_member(output: OutputFile, open: Callable[[], BinaryIO]) -> Member:
    """An output as its run recorded it, read by ``open``: its bytes must still have the recorded sha256."""
    return Member(f"outputs/{output.path}", output.size, output.content_type, open, output.sha256)


class HashingReader:
    """Reads through to ``source`` while hashing what passes."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uname = info.gname = "quern"
    return info


def manifest(job: Job, files: list[dict[str, Any]], include: list[str] | None = None) -> dict[str, Any]:
    """What the archive holds and where it came from."""
    return {
        "job_id": job.id,
        "app": job.app,
        "app_version": job.app_version,
        "params": job.params,
        "inputs": job.inputs_json(),
        "state": job.state.value,
        "exit_code": job.exit_code,
        "created": job.created.isoformat(),
        "started": None if job.started is None else job.started.isoformat(),
        "finished": None if job.finished is None else job.finished.isoformat(),
        "files": files,
    } | ({} if include is None else {"include": include})


def write_archive(sink: Sink, job: Job, members: Iterable[Member], *, include: list[str] | None = None) -> None:
    """Write the tar.gz of ``job``'s ended run into ``sink``: ``members`` in their order, then the manifest.

    Give the outputs first, then the logs sorted by name: that order is the format's.
    """
    mtime = (job.finished or job.created).timestamp()
    files: list[dict[str, Any]] = []
    with (
        gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in members:
            body = member.open()
            try:
                reader = HashingReader(body)
                tar.addfile(_info(f"{job.id}/{member.path}", member.size, mtime), fileobj=reader)
            finally:
                body.close()
            digest = reader.digest.hexdigest()
            if member.sha256 is not None and digest != member.sha256:
                raise Conflict(f"{member.path} changed since the run (sha256 mismatch)")
            files.append(
                {"path": member.path, "size": member.size, "sha256": digest, "content_type": member.content_type}
            )
        document = json.dumps(manifest(job, files, include), indent=2).encode() + b"\n"
        tar.addfile(_info(f"{job.id}/manifest.json", len(document), mtime), io.BytesIO(document))
