"""A TES task's files on the host: each container path mirrored under the job's ``task/``, and the mounts sharing them.

Every path a task names (inputs, volumes, outputs, an executor's stdin, stdout and stderr) is a
path inside its containers; on the host it lies at ``<job>/task/<path>``. Each executor's
container bind-mounts, at the same paths, the volumes, the directories its outputs and its
stdout/stderr files are written to (writable), and the inputs outside those (read-only); so
the executors share one tree, and what one leaves the next finds. The containers write into
that tree as the app user: the runner reads and writes there one component at a time, never
through a link (``open_in``), so no link left by an executor can lead it elsewhere.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from services.runner.sandbox import open_beneath
from shared.errors import Invalid
from shared.models.tasks import TaskOutput, TaskSpec

WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class Mount:
    """One bind mount of an executor's container: a container path, from its mirror under ``task/``."""

    target: str
    writable: bool


def container_path(path: str) -> PurePosixPath:
    """A task's path as a normalized absolute path; refused if relative, climbing (``..``) or not mountable."""
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        raise Invalid(f"{path!r} is not an absolute path inside the containers")
    if "," in path or any(ord(char) < 32 for char in path):
        raise Invalid(f"{path!r}: a path with a comma or a control character cannot be mounted")
    return pure


def relative_in_tree(path: str) -> str:
    """Where ``path`` lies under the job's ``task/`` directory, as a relative POSIX path."""
    return container_path(path).relative_to("/").as_posix()


def host_path(task_dir: Path, path: str) -> Path:
    """The host file or directory mirroring the container path ``path``."""
    return task_dir / relative_in_tree(path)


def has_wildcards(output: TaskOutput) -> bool:
    """Whether an output's path is a pattern (delivered file by file under its ``path_prefix``)."""
    return any(char in WILDCARDS for char in output.path)


def output_dir(output: TaskOutput) -> str:
    """The container directory an output is written in: its ``path_prefix``, itself, or its parent."""
    if has_wildcards(output):
        if output.path_prefix is None:
            raise Invalid(f"output {output.path}: a path with wildcards needs a path_prefix")
        return output.path_prefix
    return output.path if output.type == "DIRECTORY" else str(container_path(output.path).parent)


def _inside(path: PurePosixPath, others: list[PurePosixPath]) -> bool:
    return any(path != other and path.is_relative_to(other) for other in others)


def mounts(task: TaskSpec) -> list[Mount]:
    """The bind mounts every executor of ``task`` gets, outermost first; none is inside a writable one.

    The host tree mirrors the containers' paths, so a path inside a mounted directory is already there.
    """
    wanted = [*task.volumes, *(output_dir(output) for output in task.outputs)]
    for executor in task.executors:
        wanted += [str(container_path(path).parent) for path in (executor.stdout, executor.stderr) if path]
    writable = sorted({container_path(path) for path in wanted})
    if PurePosixPath("/") in writable:
        raise Invalid("a volume, an output or an executor's stdout/stderr would need the containers' / mounted")
    writable = [path for path in writable if not _inside(path, writable)]
    readable = sorted(
        {container_path(one.path) for one in task.inputs} - set(writable),
    )
    readable = [path for path in readable if not _inside(path, writable) and not _inside(path, readable)]
    found = [Mount(str(path), True) for path in writable] + [Mount(str(path), False) for path in readable]
    return sorted(found, key=lambda mount: (len(PurePosixPath(mount.target).parts), mount.target))


def prepare(task_dir: Path, task: TaskSpec, owner: tuple[int, int] | None) -> list[Mount]:
    """Make the writable directories (and the paths the read-only mounts need), then hand the tree to ``owner``."""
    found = mounts(task)
    for mount in found:
        target = host_path(task_dir, mount.target)
        if mount.writable:
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists():
            raise Invalid(f"input {mount.target} was not staged")
    for top, names, files in os.walk(task_dir):
        for name in (".", *names, *files):
            entry = Path(top, name)
            if owner is not None:
                os.chown(entry, *owner, follow_symlinks=False)
            if not entry.is_symlink():
                entry.chmod(0o755 if entry.is_dir() else 0o644)
    return found


def open_in(task_dir: Path, path: str, *, write: bool = False) -> BinaryIO:
    """Open the host mirror of ``path`` (to read, or to write anew), one component at a time, never through a link.

    Reading, it must be a regular file; writing, missing directories are refused (the executors' own tree).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY
    try:
        fd = open_beneath(task_dir, relative_in_tree(path), flags)
    except OSError as exc:
        raise Invalid(f"{path}: cannot be {'written' if write else 'read'} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Invalid(f"{path}: not a regular file")
    return os.fdopen(fd, "wb" if write else "rb")


def files_under(task_dir: Path, directory: str) -> list[str]:
    """The regular files under a container directory's mirror, as container paths; links are never followed."""
    top = host_path(task_dir, directory)
    # Reached through no link at any level: an executor may have swapped a directory above it for one.
    if top.resolve() != task_dir.resolve() / relative_in_tree(directory) or not top.is_dir():
        raise Invalid(f"{directory}: the executors left no directory there")
    found = []
    for walked, _, names in os.walk(top, followlinks=False):
        for name in names:
            entry = Path(walked, name)
            if not entry.is_symlink() and entry.is_file():
                found.append("/" + entry.relative_to(task_dir).as_posix())
    return sorted(found)
