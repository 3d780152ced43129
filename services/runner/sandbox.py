"""One job's private directory under ``WORK_DIR``: made fresh, staged into, handed to the app's user, read back.

Layout of a job's directory::

    <job_id>/inputs/<slot>/<file name>   staged from S3, outside the app's working directory
    <job_id>/inputs/<slot>/<member path> a dataset input: every member, in the bundle's layout
    <job_id>/run/                        the app's working directory; outputs are globbed here
    <job_id>/logs/stdout.txt, stderr.txt
    <job_id>/tmp/                        TMPDIR, and progress.json ($QUERN_PROGRESS_FILE)
    <job_id>/tmp/checkpoint/             $QUERN_CHECKPOINT_DIR: kept when the run is preempted
    <job_id>/task/<container path>       a TES task's inputs, volumes and outputs (``services.runner.task_tree``)
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from shared.errors import Invalid
from shared.globs import compile_glob

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
TAIL_BYTES = 2000
MAX_SCANNED_FILES = 100_000
# Each file counts at least one block, so a flood of empty files (or of names) is bounded too.
MIN_ENTRY_BYTES = 4096
UNMEASURABLE = 2**62
REMOVE_SECONDS = 600


class Sandbox:
    """One job's private directory tree."""

    def __init__(self, work_dir: Path, job_id: str) -> None:
        self.job_id = job_id
        self.root = work_dir / job_id
        self.inputs = self.root / "inputs"
        self.run = self.root / "run"
        self.logs = self.root / "logs"
        self.tmp = self.root / "tmp"
        self.stdout = self.logs / "stdout.txt"
        self.stderr = self.logs / "stderr.txt"
        self.progress_file = self.tmp / "progress.json"  # outside run/, so never taken for an output
        self.checkpoint = self.tmp / "checkpoint"
        self.task = self.root / "task"

    def create(self) -> None:
        """Start from empty, even if an earlier attempt left a tree behind."""
        shutil.rmtree(self.root, ignore_errors=True)
        for directory in (self.inputs, self.run, self.logs, self.tmp, self.checkpoint):
            directory.mkdir(parents=True, mode=0o700)
        self.stdout.touch()
        self.stderr.touch()

    def environment(self, declared: Mapping[str, str]) -> dict[str, str]:
        """The app's whole environment: what every program needs, this directory's paths, what the app declares."""
        return {
            **BASE_ENV,
            "HOME": str(self.run),
            "TMPDIR": str(self.tmp),
            "QUERN_PROGRESS_FILE": str(self.progress_file),
            "QUERN_CHECKPOINT_DIR": str(self.checkpoint),
            **declared,
        }

    def hand_over(self, uid: int, gid: int) -> None:
        """Let the run-as user work in run/ and tmp/ and read inputs/; the rest stays the runner's.

        The root stays the runner's (traversable, not writable), so the app cannot swap logs/ for
        a tree of links that the runner, reading the logs, would follow.
        """
        os.chmod(self.root, 0o711)
        for directory in (self.run, self.tmp):
            os.chown(directory, uid, gid)
        for top, names, files in os.walk(self.checkpoint):  # restored from a preempted run: the app's to change
            for name in (".", *names, *files):
                os.chown(Path(top, name), uid, gid, follow_symlinks=False)
        for top, _, names in os.walk(self.inputs):
            os.chmod(top, 0o755)
            for name in names:
                os.chmod(Path(top, name), 0o644, follow_symlinks=False)

    def input_path(self, slot: str, name: str) -> Path:
        """Where the file for ``slot`` is staged (its directory is created)."""
        directory = self.inputs / slot
        directory.mkdir(exist_ok=True)
        return directory / name

    def input_dir(self, slot: str) -> Path:
        """The (created) directory a dataset input for ``slot`` is staged into."""
        directory = self.inputs / slot
        directory.mkdir(exist_ok=True)
        return directory

    def member_path(self, slot: str, member: str) -> Path:
        """Where a dataset member is staged (parents created); a path that escapes the slot is refused."""
        directory = self.inputs / slot
        target = (directory / member).resolve()
        if not target.is_relative_to(directory.resolve()) or target == directory.resolve():
            raise Invalid(f"dataset member {member!r} would be staged outside its input directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def stderr_tail(self) -> str:
        """The last bytes the app wrote to stderr, as text."""
        with self.stderr.open("rb") as handle:
            handle.seek(max(0, self.stderr.stat().st_size - TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")

    def remove(self) -> None:
        """Delete the whole tree, whatever the app made of its part: unreadable (chmod 000), deep, oddly named.

        Root deletes anything; a runner of another user first gives itself back the directories
        the app closed (they are its own: the app ran as its user). GNU ``chmod -R`` and ``rm -rf``
        walk without following links and without Python's recursion or path-length limits.
        """
        try:
            shutil.rmtree(self.root)
            return
        except FileNotFoundError:
            return
        except (OSError, RecursionError):
            pass
        for command in (["chmod", "-R", "u+rwx", "--"], ["rm", "-rf", "--one-file-system", "--"]):
            subprocess.run(
                [*command, str(self.root)], stdin=subprocess.DEVNULL, capture_output=True, timeout=REMOVE_SECONDS
            )

    def disk_use(self) -> int:
        """Bytes the app's part of the directory (run/, tmp/, logs/, task/) takes on disk, read without recursion.

        Links are never followed; a directory the app closed (chmod 000) is opened again for a
        runner that is not root (it is the runner's own), so nothing it holds goes uncounted.
        """
        used = 0
        pending = [str(self.run), str(self.tmp), str(self.logs), str(self.task)]
        while pending:
            directory = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except PermissionError:
                _reopen(directory)
                try:
                    entries = list(os.scandir(directory))
                except OSError:
                    continue
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    return UNMEASURABLE  # nested deeper than a path can name: a place to hide, taken as full
                continue
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += max(info.st_blocks * 512, MIN_ENTRY_BYTES)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
        return used

    def collect(self, globs: list[str], *, max_bytes: int, max_files: int = 10_000) -> list[tuple[str, Path]]:
        """Regular files in the run directory matching the app's output globs, as (relative path, path).

        The walk never follows links (so ``**`` cannot wander out of the directory or loop) and
        links are never collected; more than ``max_bytes`` in all, or more than ``max_files`` files
        (each is described in the job's record, which must stay well below Mongo's 16 MiB), is an error.
        """
        patterns = [compile_glob(glob) for glob in globs]
        found: list[tuple[str, Path]] = []
        scanned = 0
        for directory, _, names in os.walk(self.run, followlinks=False):
            for name in names:
                scanned += 1
                if scanned > MAX_SCANNED_FILES:
                    raise Invalid(f"the run directory holds more than {MAX_SCANNED_FILES} files")
                path = Path(directory, name)
                relative = path.relative_to(self.run).as_posix()
                if not path.is_symlink() and path.is_file() and any(p.matches(relative) for p in patterns):
                    found.append((relative, path))
        if len(found) > max_files:
            raise Invalid(f"the app wrote {len(found)} output files; at most {max_files} are kept (MAX_OUTPUT_FILES)")
        if sum(path.stat().st_size for _, path in found) > max_bytes:
            raise Invalid(f"the outputs exceed the limit of {max_bytes} bytes")
        return sorted(found)

    def open_output(self, relative: str, *, base: Path | None = None) -> BinaryIO:
        """Open an output found by ``collect`` for reading, one path component at a time, never through a link.

        The run directory is the app's: a process the app left behind could swap a file, or a
        directory above it, for a link between ``collect`` and the upload. Walking with
        ``O_NOFOLLOW`` from the run directory (or ``base``, another of the app's) makes the runner
        read only what lies inside it.
        """
        try:
            fd = open_beneath(base or self.run, relative, os.O_RDONLY)
        except OSError as exc:
            raise Invalid(f"output {relative} changed after the run ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Invalid(f"output {relative} changed after the run (no longer a regular file)")
        return os.fdopen(fd, "rb")


def open_beneath(base: Path, relative: str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of ``base/relative`` opened with ``flags``, walked one component at a time, never through a link.

    Non-blocking too: a FIFO planted there must not hang the runner (regular files ignore the flag).
    """
    *parents, name = relative.split("/")
    directory = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parents:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=directory)
    finally:
        os.close(directory)


def _reopen(directory: str) -> None:
    """Give the runner back a directory of its own that the app made unreadable, without following a link."""
    try:
        fd = os.open(directory, os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.chmod(f"/proc/self/fd/{fd}", 0o700)  # an O_PATH descriptor names the directory itself
    except OSError:
        pass
    finally:
        os.close(fd)
