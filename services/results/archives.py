"""A job's results as one tar.gz, streamed S3 -> tar -> gzip -> S3 multipart in bounded memory.

No temporary file and no whole object in memory: each member is copied from its S3 body into
the tar stream in small blocks, and the compressed stream is uploaded part by part. The bytes
are deterministic (fixed gzip mtime, member times from the job), so two packagers racing on
the same job write identical archives. Layout::

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
from typing import Any, BinaryIO

from shared.apps import matching_outputs
from shared.errors import Conflict
from shared.models import Job, run_prefix
from shared.storage import ObjectStorage

COMPRESS_LEVEL = 6


class HashingReader:
    """Reads through to ``source`` while hashing what passes."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uname = info.gname = "quern"
    return info


def _copy(tar: tarfile.TarFile, storage: ObjectStorage, key: str, info: tarfile.TarInfo) -> str:
    body = storage.open(key)
    try:
        reader = HashingReader(body)
        tar.addfile(info, fileobj=reader)
    finally:
        body.close()
    return reader.digest.hexdigest()


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


def build_archive(
    storage: ObjectStorage, job: Job, *, selection: tuple[str, list[str]] | None = None
) -> tuple[str, int, str]:
    """Write ``archive.tar.gz`` under the run's prefix; returns its key, size and sha256.

    A ``selection`` ``(digest, globs)`` goes to ``archives/<digest>.tar.gz`` there instead. The
    run's prefix keeps an archive of an earlier run, still being built, from landing on this one's key.
    """
    mtime = (job.finished or job.created).timestamp()
    include = None if selection is None else selection[1]
    outputs = job.outputs if include is None else matching_outputs(job.outputs, include)
    where = "archive" if selection is None else f"archives/{selection[0]}"
    sink = storage.sink(f"{run_prefix(job.id, job.run_token)}{where}.tar.gz", content_type="application/gzip")
    files: list[dict[str, Any]] = []
    try:
        with (
            gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0, filename="") as gz,
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for output in outputs:
                path = f"outputs/{output.path}"
                digest = _copy(tar, storage, output.key, _member(f"{job.id}/{path}", output.size, mtime))
                if digest != output.sha256:
                    raise Conflict(f"output {output.path} changed in storage since the run (sha256 mismatch)")
                files.append({"path": path, "size": output.size, "sha256": digest, "content_type": output.content_type})
            for name, key in sorted(job.logs.items()):
                path, size = f"logs/{name}.txt", storage.size(key)
                digest = _copy(tar, storage, key, _member(f"{job.id}/{path}", size, mtime))
                files.append({"path": path, "size": size, "sha256": digest, "content_type": "text/plain"})
            document = json.dumps(manifest(job, files, include), indent=2).encode() + b"\n"
            tar.addfile(_member(f"{job.id}/manifest.json", len(document), mtime), io.BytesIO(document))
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return sink.key, sink.size, sink.sha256
