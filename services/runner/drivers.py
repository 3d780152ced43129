"""Execution drivers: how an app's filled-in argv becomes a running process, directly or in a container.

``local`` starts the argv itself. ``docker`` starts ``docker run`` with the job's ``inputs/``
(read-only), ``run/`` and ``tmp/`` bind-mounted at the same paths, so the argv means the same
inside the container. Both start through ``services.runner.launch`` (limits, user, death with
the runner). Either way the app sees a scrubbed environment. An app picks its driver in its
definition; a runner offers those listed in ``RUNNER_DRIVERS``. With ``RUN_AS_USER``, apps run
as that user under either driver. ``services.runner.processes`` starts and stops what a driver builds.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from services.runner.sandbox import Sandbox
from shared.apps import AppSpec
from shared.settings import ConfigError, RunnerSettings

log = structlog.get_logger()
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
CLEAN_UP_SECONDS = 60.0


def app_environment(sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
    """Only what every program needs plus what the app declares; nothing of the worker's own."""
    return {
        **BASE_ENV,
        "HOME": str(sandbox.run),
        "TMPDIR": str(sandbox.tmp),
        "QUERN_PROGRESS_FILE": str(sandbox.progress_file),
        "QUERN_CHECKPOINT_DIR": str(sandbox.checkpoint),
        **spec.env,
    }


@dataclass(frozen=True)
class RunAs:
    """The user apps run as, instead of the runner's own."""

    name: str
    uid: int
    gid: int

    @classmethod
    def resolve(cls, user: str) -> RunAs:
        """Look the user up by name or uid; exit if it is unknown, root, or out of the runner's reach."""
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"configuration error:\n  RUN_AS_USER: no user {user!r} on this machine") from None
        if entry.pw_uid == 0:
            raise ConfigError("configuration error:\n  RUN_AS_USER: apps must not run as root")
        if os.geteuid() not in (0, entry.pw_uid):
            raise ConfigError("configuration error:\n  RUN_AS_USER: only a runner started as root can change user")
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def check_reachable(self, directory: Path) -> None:
        """Exit unless this user may pass through ``directory`` and every directory above it."""
        for step in (directory, *directory.parents):
            info = step.stat()
            if info.st_uid == self.uid:
                needed = stat.S_IXUSR
            elif info.st_gid == self.gid:
                needed = stat.S_IXGRP
            else:
                needed = stat.S_IXOTH
            if not info.st_mode & needed:
                raise ConfigError(
                    f"configuration error:\n  WORK_DIR: {self.name} cannot enter {step}; "
                    "apps run there as RUN_AS_USER (chmod o+x, or pick another WORK_DIR)"
                )


class Driver(Protocol):
    """Starts an app's argv somewhere; says how to remove what may outlive the started process."""

    name: str
    owner: tuple[int, int] | None  # who the job's directory is handed to before the app starts; None: the runner

    def command(self, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> list[str]:
        """The command the runner starts, in its own process group, for this run."""
        ...

    def environment(self, sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
        """The environment of that command."""
        ...

    async def clean_up(self, job_id: str) -> None:
        """Remove whatever of this job's run may outlive the started process (before and after a run)."""
        ...


def _launch(options: dict[str, object], command: list[str]) -> list[str]:
    # -I: the launcher runs as root until it drops to the app's user, so it must not import from
    # its working directory, nor heed PYTHON* variables an app definition may declare.
    return [sys.executable, "-I", "-m", "services.runner.launch", json.dumps(options), "--", *command]


def kill_processes_of(uid: int) -> int:
    """SIGKILL every process running as ``uid`` (real or effective), until none is left; returns how many."""
    killed = 0
    for _ in range(10):  # a process forking while it is killed may leave a child for the next round
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                uids = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            if str(uid) in uids.split()[1:3]:
                found.append(int(status.parent.name))
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


class LocalDriver:
    """The app is a child process of the runner."""

    name = "local"

    def __init__(self, run_as: RunAs | None = None) -> None:
        self.run_as = run_as
        self.owner = None if run_as is None else (run_as.uid, run_as.gid)
        self._running: set[str] = set()

    def command(self, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> list[str]:
        self._running.add(sandbox.job_id)
        user = None if self.run_as is None else [self.run_as.uid, self.run_as.gid]
        options: dict[str, object] = {"limits": spec.limits.model_dump(), "user": user, "cwd": str(sandbox.run)}
        return _launch(options, argv)

    def environment(self, sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
        return app_environment(sandbox, spec)

    async def clean_up(self, job_id: str) -> None:
        """Kill what an app detached from its process group, once no app of this runner is running.

        An app may leave its group (``setsid``, a double fork) and so escape the group kill. With
        ``RUN_AS_USER`` every process of that user is an app's, so when this runner has no run in
        progress, any such process is a leftover. This runs in the event loop's thread without
        awaiting, so no run of this runner starts while it looks.
        """
        self._running.discard(job_id)
        if self.run_as is not None and not self._running and (killed := kill_processes_of(self.run_as.uid)):
            log.warning("leftover_processes_killed", job_id=job_id, user=self.run_as.name, processes=killed)


class DockerDriver:
    """The app runs in a container of the app's image, through the docker command line."""

    name = "docker"

    def __init__(self, executable: str = "docker", *, run_as: RunAs | None = None, host: str | None = None) -> None:
        self.executable = executable
        self.host = host
        # Files the app writes into the bind mounts belong to this user, so the runner can read and remove them.
        self.owner = None if run_as is None else (run_as.uid, run_as.gid)
        self.user = self.owner or (os.getuid(), os.getgid())

    @staticmethod
    def container(job_id: str) -> str:
        """The container's name: one per job, so a leftover of an earlier attempt can be found and removed."""
        return f"quern-{job_id.lower()}"

    def command(self, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> list[str]:
        limits = spec.limits
        docker = [
            self.executable,
            "run",
            "--rm",
            "--name",
            self.container(sandbox.job_id),
            "--label",
            f"quern.job={sandbox.job_id}",
            "--init",  # a PID 1 that forwards SIGTERM on cancel and timeout, and reaps the app's children
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            f"{self.user[0]}:{self.user[1]}",
            "--workdir",
            str(sandbox.run),
            "--mount",
            f"type=bind,source={sandbox.inputs},target={sandbox.inputs},readonly",
            "--mount",
            f"type=bind,source={sandbox.run},target={sandbox.run}",
            "--mount",
            f"type=bind,source={sandbox.tmp},target={sandbox.tmp}",
            "--ulimit",
            "core=0",
        ]
        if limits.memory_mb is not None:
            docker += ["--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m"]
        if limits.cpu_seconds is not None:
            docker += ["--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds}"]
        if limits.file_size_mb is not None:
            size = limits.file_size_mb * 2**20
            docker += ["--ulimit", f"fsize={size}:{size}"]
        if limits.open_files is not None:
            docker += ["--ulimit", f"nofile={limits.open_files}:{limits.open_files}"]
        if limits.processes is not None:
            docker += ["--pids-limit", str(limits.processes)]
        # The image's own PATH stays unless the app declares one.
        env = {key: value for key, value in app_environment(sandbox, spec).items() if key != "PATH" or key in spec.env}
        for key, value in env.items():
            docker += ["--env", f"{key}={value}"]
        assert spec.image is not None  # AppSpec requires one for this driver
        docker += ["--entrypoint", argv[0], spec.image, *argv[1:]]
        return _launch({"limits": {}, "user": None, "cwd": str(sandbox.root)}, docker)

    def environment(self, sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
        # The CLI reads ~/.docker/config.json (credential helpers, proxies): never from a directory the app owns.
        env = {"PATH": BASE_ENV["PATH"], "HOME": str(sandbox.root)}
        if self.host is not None:
            env["DOCKER_HOST"] = self.host
        return env

    async def clean_up(self, job_id: str) -> None:
        env = {"PATH": BASE_ENV["PATH"], **({"DOCKER_HOST": self.host} if self.host else {})}
        try:
            process = await asyncio.create_subprocess_exec(
                self.executable,
                "rm",
                "--force",
                self.container(job_id),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("container_clean_up_failed", job_id=job_id, error=repr(exc))
            return
        try:
            _, err = await asyncio.wait_for(process.communicate(), CLEAN_UP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("container_clean_up_failed", job_id=job_id, error=f"docker rm took over {CLEAN_UP_SECONDS} s")
            return
        if process.returncode != 0 and b"No such container" not in err:
            log.warning("container_clean_up_failed", job_id=job_id, error=err.decode(errors="replace")[-500:])


def own_work_dir(work_dir: Path) -> None:
    """Create ``WORK_DIR`` (0711: apps may pass, not list it) or exit unless it is the runner's alone.

    The runner makes, hands over and removes job directories there; in a directory another user
    could write to (a ``/tmp/quern-work`` made in advance), that user could redirect those steps.
    """
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
    info = work_dir.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"configuration error:\n  WORK_DIR: {work_dir} must belong to the runner's user and be writable by it alone"
        )
    work_dir.chmod(0o711)


def offered(settings: RunnerSettings) -> dict[str, Driver]:
    """The drivers this runner offers, by name; exits if ``RUN_AS_USER`` cannot work here."""
    run_as = RunAs.resolve(settings.run_as_user) if settings.run_as_user else None
    own_work_dir(settings.work_dir)
    if run_as is not None:
        run_as.check_reachable(settings.work_dir)
    drivers: dict[str, Driver] = {}
    if "local" in settings.drivers():
        drivers["local"] = LocalDriver(run_as)
    if "docker" in settings.drivers():
        drivers["docker"] = DockerDriver(settings.docker_command, run_as=run_as, host=settings.docker_host)
    return drivers
