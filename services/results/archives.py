"""A job's results as one tar.gz, streamed S3 -> tar -> gzip -> S3 multipart in bounded memory.

No temporary file and no whole object in memory: each member is copied from its S3 body into
the tar stream in small blocks, and the compressed stream is uploaded part by part. The format
(``shared.archives``) is deterministic, so two packagers racing on the same job, or a packager
and the runner that archived a small run itself, write identical archives.
"""

from __future__ import annotations

import functools

from shared.apps import matching_outputs
from shared.archives import Member, output_member, write_archive
from shared.models import Job, run_prefix
from shared.storage import ObjectStorage


def _members(storage: ObjectStorage, job: Job, include: list[str] | None) -> list[Member]:
    """The outputs (those ``include`` matches, if given), then the logs, each read from S3."""
    outputs = job.outputs if include is None else matching_outputs(job.outputs, include)
    members = [output_member(output, functools.partial(storage.open, output.key)) for output in outputs]
    for name, key in sorted(job.logs.items()):
        members.append(
            Member(f"logs/{name}.txt", storage.size(key), "text/plain", functools.partial(storage.open, key))
        )
    return members


def build_archive(
    storage: ObjectStorage, job: Job, *, selection: tuple[str, list[str]] | None = None
) -> tuple[str, int, str]:
    """Write ``archive.tar.gz`` under the run's prefix; returns its key, size and sha256.

    A ``selection`` ``(digest, globs)`` goes to ``archives/<digest>.tar.gz`` there instead. The
    run's prefix keeps an archive of an earlier run, still being built, from landing on this one's key.
    """
    include = None if selection is None else selection[1]
    where = "archive" if selection is None else f"archives/{selection[0]}"
    sink = storage.sink(f"{run_prefix(job.id, job.run_token)}{where}.tar.gz", content_type="application/gzip")
    try:
        write_archive(sink, job, _members(storage, job, include), include=include)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return sink.key, sink.size, sink.sha256
