"""A preempted run's checkpoint: the app's ``$QUERN_CHECKPOINT_DIR``, kept in S3 for the job's next run.

An app that wants to resume after a preemption writes its state into ``$QUERN_CHECKPOINT_DIR``
(``tmp/checkpoint/`` in its job's directory). When a draining runner hands the job back, it packs
that directory as ``jobs/<id>/checkpoint.tar.gz``: regular files and directories only, each read
without following links (the directory is the app's), at most ``max_bytes`` in all. The next run
finds it unpacked in the same place before its app starts, each member checked first.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import structlog

from services.runner.sandbox import Sandbox
from shared.errors import Invalid, NotFound
from shared.models import Job, checkpoint_key
from shared.storage import ObjectStorage

log = structlog.get_logger()


def _contents(sandbox: Sandbox) -> tuple[list[str], list[str], int]:
    """The checkpoint's directories and regular files (relative paths, links left out) and their total size."""
    directories, files, size = [], [], 0
    for top, names, found in os.walk(sandbox.checkpoint, followlinks=False):
        base = Path(top).relative_to(sandbox.checkpoint)
        directories += [(base / name).as_posix() for name in names if not Path(top, name).is_symlink()]
        for name in found:
            path = Path(top, name)
            if not path.is_symlink() and path.is_file():
                files.append((base / name).as_posix())
                size += path.stat().st_size
    return sorted(directories), sorted(files), size


def save_checkpoint(storage: ObjectStorage, job: Job, sandbox: Sandbox, *, max_bytes: int) -> str | None:
    """Pack and upload the checkpoint directory; its key, or None if the app left none (or one too big)."""
    directories, files, size = _contents(sandbox)
    if not files:
        return None
    if size > max_bytes:
        log.warning("checkpoint_too_big", job_id=job.id, size=size, max_bytes=max_bytes)
        return None
    packed = sandbox.root / "checkpoint.tar.gz"  # the runner's part of the job's directory, not the app's
    with tarfile.open(packed, "w:gz") as tar:
        for directory in directories:
            tar.addfile(_directory(directory))
        for relative in files:
            with sandbox.open_output(relative, base=sandbox.checkpoint) as handle:
                info = tarfile.TarInfo(relative)
                info.size = os.fstat(handle.fileno()).st_size
                tar.addfile(info, handle)
    key = checkpoint_key(job.id)
    storage.upload_file(packed, key, content_type="application/gzip")
    packed.unlink()
    return key


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o700
    return info


def restore_checkpoint(storage: ObjectStorage, job: Job, sandbox: Sandbox, *, max_bytes: int) -> bool:
    """Unpack the job's checkpoint into its checkpoint directory; False if it has none (or it is gone)."""
    if job.checkpoint is None:
        return False
    packed = sandbox.root / "checkpoint.tar.gz"
    try:
        storage.download_file(job.checkpoint, packed)
    except NotFound:
        log.warning("checkpoint_missing", job_id=job.id, key=job.checkpoint)
        return False
    try:
        with tarfile.open(packed, "r:gz") as tar:
            members = tar.getmembers()
            total = 0
            for member in members:
                name = Path(member.name)
                if not (member.isfile() or member.isdir()) or name.is_absolute() or ".." in name.parts:
                    raise Invalid(f"the checkpoint holds {member.name!r}, which is not a plain file or directory")
                total += member.size
            if total > max_bytes:
                raise Invalid(f"the checkpoint unpacks to over {max_bytes} bytes")
            tar.extractall(sandbox.checkpoint, members=members, filter="data")
    except tarfile.TarError as exc:
        raise Invalid(f"the checkpoint cannot be read ({exc})") from None
    finally:
        packed.unlink(missing_ok=True)
    return True
