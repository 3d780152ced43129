"""Where and how an app runs: a fresh directory, argv without a shell, a scrubbed environment, limits.

Layout of a job's directory under ``WORK_DIR``::

    <job_id>/inputs/<slot>/<file name>   staged from S3, outside the app's working directory
    <job_id>/inputs/<slot>/<member path> a dataset input: every member, in the bundle's layout
    <job_id>/run/                        the app's working directory; outputs are globbed here
    <job_id>/logs/stdout.txt, stderr.txt
    <job_id>/tmp/                        TMPDIR, and progress.json ($QUERN_PROGRESS_FILE)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.apps import PLACEHOLDER, AppSpec, glob_regex
from shared.errors import Invalid

if TYPE_CHECKING:
    from services.runner.drivers import Driver

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
TERM_GRACE_SECONDS = 5.0
TAIL_BYTES = 2000
MAX_SCANNED_FILES = 100_000


def render_value(value: Any) -> str:
    """A parameter as one argv string: JSON spelling for numbers and booleans, strings as they are."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise Invalid(f"parameter value {value!r} cannot be placed on a command line")


def build_argv(
    spec: AppSpec, params: dict[str, Any], inputs: dict[str, Path], *, python: str, app_dir: Path
) -> list[str]:
    """Fill the app's command template; each template element becomes exactly one argument."""
    builtins = {"app_dir": str(app_dir), "python": python}

    def fill(match: Any) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "params":
            return render_value(params[name])
        if kind == "inputs":
            return str(inputs[name])
        return builtins[kind]

    return [PLACEHOLDER.sub(fill, element) for element in spec.command]


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

    def create(self) -> None:
        """Start from empty, even if an earlier attempt left a tree behind."""
        shutil.rmtree(self.root, ignore_errors=True)
        for directory in (self.inputs, self.run, self.logs, self.tmp):
            directory.mkdir(parents=True, mode=0o700)
        self.stdout.touch()
        self.stderr.touch()

    def hand_over(self, uid: int, gid: int) -> None:
        """Let the run-as user work in run/ and tmp/ and read inputs/; the rest stays the runner's.

        The root stays the runner's (traversable, not writable), so the app cannot swap logs/ for
        a tree of links that the runner, reading the logs, would follow.
        """
        os.chmod(self.root, 0o711)
        for directory in (self.run, self.tmp):
            os.chown(directory, uid, gid)
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

    def environment(self, spec: AppSpec) -> dict[str, str]:
        """Only what every program needs plus what the app declares; nothing of the worker's own."""
        return {
            **BASE_ENV,
            "HOME": str(self.run),
            "TMPDIR": str(self.tmp),
            "QUERN_PROGRESS_FILE": str(self.progress_file),
            **spec.env,
        }

    def stderr_tail(self) -> str:
        """The last bytes the app wrote to stderr, as text."""
        with self.stderr.open("rb") as handle:
            handle.seek(max(0, self.stderr.stat().st_size - TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")

    def remove(self) -> None:
        """Delete the whole tree."""
        shutil.rmtree(self.root, ignore_errors=True)

    def collect(self, globs: list[str], *, max_bytes: int) -> list[tuple[str, Path]]:
        """Regular files in the run directory matching the app's output globs, as (relative path, path).

        The walk never follows links (so ``**`` cannot wander out of the directory or loop) and
        links are never collected; more than ``max_bytes`` in all is an error.
        """
        patterns = [glob_regex(glob) for glob in globs]
        found: list[tuple[str, Path]] = []
        scanned = 0
        for directory, _, names in os.walk(self.run, followlinks=False):
            for name in names:
                scanned += 1
                if scanned > MAX_SCANNED_FILES:
                    raise Invalid(f"the run directory holds more than {MAX_SCANNED_FILES} files")
                path = Path(directory, name)
                relative = path.relative_to(self.run).as_posix()
                if not path.is_symlink() and path.is_file() and any(p.match(relative) for p in patterns):
                    found.append((relative, path))
        if sum(path.stat().st_size for _, path in found) > max_bytes:
            raise Invalid(f"the outputs exceed the limit of {max_bytes} bytes")
        return sorted(found)

    def open_output(self, relative: str) -> BinaryIO:
        """Open an output found by ``collect`` for reading, one path component at a time, never through a link.

        The run directory is the app's: a process the app left behind could swap a file, or a
        directory above it, for a link between ``collect`` and the upload. Walking with
        ``O_NOFOLLOW`` from the run directory makes the runner read only what lies inside it.
        """
        *parents, name = relative.split("/")
        directory = os.open(self.run, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in parents:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
                os.close(directory)
                directory = inner
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        except OSError as exc:
            raise Invalid(f"output {relative} changed after the run ({exc.strerror})") from None
        finally:
            os.close(directory)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Invalid(f"output {relative} changed after the run (no longer a regular file)")
        return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class Exit:
    """How the app's process ended."""

    code: int | None
    timed_out: bool = False
    stopped: bool = False


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


async def _stop(process: asyncio.subprocess.Process) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), TERM_GRACE_SECONDS)
    except TimeoutError:
        _kill_group(process.pid, signal.SIGKILL)
        await process.wait()


async def run_app(
    argv: list[str], *, sandbox: Sandbox, spec: AppSpec, timeout: float, stop: asyncio.Event, driver: Driver
) -> Exit:
    """Run argv through ``driver`` in its own session and process group until it exits, times out or ``stop`` is set.

    On timeout or stop the whole group gets SIGTERM, then SIGKILL after a grace period; then
    the driver removes whatever of the run outlived the group (a container).
    """
    await driver.clean_up(sandbox.job_id)  # a leftover of an earlier attempt on this machine
    with sandbox.stdout.open("ab") as out, sandbox.stderr.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *driver.command(argv, sandbox=sandbox, spec=spec),
            cwd=sandbox.root,  # the runner's; the launcher enters run/ once it is the app's user
            env=driver.environment(sandbox, spec),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    exited = asyncio.ensure_future(process.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({exited, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            return Exit(code=exited.result())
        await _stop(process)
        return Exit(code=None, timed_out=not stopping.done(), stopped=stopping.done())
    finally:
        stopping.cancel()
        # Whatever the app left running in its group dies with it.
        _kill_group(process.pid, signal.SIGKILL)
        await driver.clean_up(sandbox.job_id)
