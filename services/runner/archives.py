"""The archive of a small run, written by its runner from the run's directory as the run ends.

A run whose outputs and logs total at most ``RUNNER_ARCHIVE_MAX_MB`` is archived here, in the
format of ``shared.archives`` and at the key the results service would use (under the run's own
prefix, so a stale run's archive goes with its other uploads). The archive is attached by the
same compare-and-set that records the end (``JobStore.finish_job``), so the results service has
no second pass over S3 to make for it. Bigger runs, TES tasks (their outputs lie in a task tree
of their own) and runs whose logs were lost are packaged by the results service, as before.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import BinaryIO

from services.runner.sandbox import Sandbox
from shared.archives import Member, output_member, write_archive
from shared.models import Archive, Job, run_prefix, utcnow
from shared.settings import RunnerSettings
from shared.storage import ObjectStorage


def _log_paths(sandbox: Sandbox) -> dict[str, Path]:
    return {"stdout": sandbox.stdout, "stderr": sandbox.stderr}


def archived_here(ended: Job, sandbox: Sandbox, *, settings: RunnerSettings) -> bool:
    """Whether the runner archives this ended run itself: an app's run, both logs kept, small enough."""
    if ended.task is not None or set(ended.logs) != set(_log_paths(sandbox)) or settings.runner_archive_max_mb == 0:
        return False
    logs = sum(path.stat().st_size for path in _log_paths(sandbox).values())
    return logs + sum(output.size for output in ended.outputs) <= settings.runner_archive_max_mb * 2**20


def _open_log(path: Path) -> BinaryIO:
    return path.open("rb")


def _members(ended: Job, sandbox: Sandbox) -> list[Member]:
    """The outputs (read from the run directory, never through a link), then the logs, as results orders them."""
    members = [output_member(output, functools.partial(sandbox.open_output, output.path)) for output in ended.outputs]
    paths = _log_paths(sandbox)
    for name in sorted(ended.logs):
        path = paths[name]
        members.append(
            Member(f"logs/{name}.txt", path.stat().st_size, "text/plain", functools.partial(_open_log, path))
        )
    return members


def build_run_archive(storage: ObjectStorage, ended: Job, sandbox: Sandbox) -> Archive:
    """Write the archive of ``ended`` (the job as its end will be recorded) from ``sandbox``; one PUT when small."""
    sink = storage.sink(f"{run_prefix(ended.id, ended.run_token)}archive.tar.gz", content_type="application/gzip")
    try:
        write_archive(sink, ended, _members(ended, sandbox))
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return Archive(key=sink.key, size=sink.size, sha256=sink.sha256, created=utcnow())
