"""Execution drivers: how an app's filled-in argv becomes a running process, in a sandbox or a container.

``local`` starts the argv in a bubblewrap sandbox of its own (``services.runner.bubblewrap``;
``LOCAL_SANDBOX=none`` runs it unconfined). ``docker`` starts ``docker run`` (or ``podman run``)
with the job's ``inputs/`` (read-only), ``run/`` and ``tmp/`` bind-mounted at the same paths,
so the argv means the same inside the container. Both start through ``services.runner.launch``
(limits, user, death with the runner). Either way the app sees a scrubbed environment. An app
picks its driver in its definition; a runner offers those listed in ``RUNNER_DRIVERS``. Apps
run as ``RUN_AS_USER``, or as nobody (65534) under a runner started as root.
``services.runner.processes`` starts and stops what a driver builds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Protocol

import structlog

from services.runner import launch
from services.runner.bubblewrap import Bubblewrap, kill_sandboxes, sandboxes_alive
from services.runner.containers import DockerDriver
from services.runner.sandbox import Sandbox
from services.runner.users import RunAs, app_user, kill_processes_of
from shared.apps import AppSpec
from shared.settings import ConfigError, RunnerSettings

log = structlog.get_logger()

SANDBOX_END_SECONDS = 5.0  # how long a killed sandbox may take to end before the runner says so


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

    def pass_fds(self, job_id: str) -> tuple[int, ...]:
        """The descriptors that command must inherit; whoever starts it closes them once it started."""
        ...

    async def clean_up(self, job_id: str, *, fresh: bool = False) -> None:
        """Remove whatever of this job's run may outlive the started process (before and after a run).

        ``fresh``: before the job's first run, which no earlier run of it can have left anything for.
        """
        ...


class LocalDriver:
    """The app is a child process of the runner, in a bubblewrap sandbox of its own (without one: unconfined)."""

    name = "local"

    def __init__(self, run_as: RunAs | None = None, *, bwrap: Bubblewrap | None = None) -> None:
        self.run_as = run_as
        self.bwrap = bwrap
        if bwrap is not None:
            self.owner = bwrap.user
        else:
            self.owner = None if run_as is None else (run_as.uid, run_as.gid)
        self._running: set[str] = set()
        # Per job, a pipe bwrap writes its namespace's init into (--info-fd): the read end, and the
        # write end until the command is started with it.
        self._info: dict[str, int] = {}
        self._inherit: dict[str, int] = {}

    def command(self, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> list[str]:
        self._running.add(sandbox.job_id)
        limits = spec.limits.model_dump()
        env = sandbox.environment(spec.env)
        if self.bwrap is None:
            user = None if self.run_as is None else (self.run_as.uid, self.run_as.gid)
            return launch.command(argv, limits=limits, user=user, cwd=sandbox.run, env=env)
        # launcher -> bwrap -> app. The launcher wraps bwrap, outside the sandbox; its limits and death
        # signal pass through bwrap to the app (exec and fork keep them). bwrap starts as the runner's
        # user, to mount what the app's user could not reach, and drops to the app's user last.
        self._init_of(sandbox.job_id)  # a pipe of an earlier command never started goes
        self._info[sandbox.job_id], self._inherit[sandbox.job_id] = os.pipe()
        info_fd = self._inherit[sandbox.job_id]
        wrapped = self.bwrap.command(argv, sandbox=sandbox, env=env, network=spec.network, info_fd=info_fd)
        return launch.command(wrapped, limits=limits, ignore_term=True)

    def pass_fds(self, job_id: str) -> tuple[int, ...]:
        write = self._inherit.pop(job_id, None)
        return () if write is None else (write,)

    def environment(self, sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
        # The launcher's own: the app's is set once the launcher is the app's user, or inside the sandbox
        # (bwrap's --clearenv and --setenv).
        return dict(launch.ENVIRONMENT)

    async def clean_up(self, job_id: str, *, fresh: bool = False) -> None:
        """Kill what may outlive a run: a sandbox left unowned, or what an unconfined app detached from its group.

        In a sandbox nothing outlives the app: its PID namespace ends with it, unless the runner was
        killed while bwrap started (``kill_sandboxes``), so a sandbox naming this job's directory
        is killed before each run but the job's first (``fresh``: none can exist) and after each
        run, and the run ends once none is left. Unconfined, an app may leave its group
        (``setsid``, a double fork) and so escape the group kill. With
        ``RUN_AS_USER`` every process of that user is an app's, so when this runner has no run in
        progress, any such process is a leftover. That look runs in the event loop's thread without
        awaiting, so no run of this runner starts while it looks.
        """
        ran = job_id in self._running
        self._running.discard(job_id)
        if self.bwrap is not None:
            init = self._init_of(job_id) if ran else None
            if fresh and not ran:
                return  # no run of this job has started a sandbox: there is no process to look for
            marker = f"/{job_id}/run"
            # Before a run, a sandbox naming this job's directory is a leftover. After one, the outer
            # bwrap exits as soon as the app does, and the namespace's init and what the app left
            # running end a moment later: the run is over once they are gone. bwrap said which
            # process that init is, so only it is looked at; if it did not (it ended before it
            # started one), or before a run, one look at every process finds them. Then only those
            # are watched, and everything is looked at once more when they are gone (a bwrap killed
            # as it started its namespace's init left that init).
            rescan = init is None
            sandboxes = kill_sandboxes(marker) if init is None else kill_sandboxes(marker, [init])
            if sandboxes and not ran:
                log.warning("leftover_sandboxes_killed", job_id=job_id, sandboxes=len(sandboxes))
            deadline = time.monotonic() + SANDBOX_END_SECONDS
            while sandboxes:
                while sandboxes_alive(marker, sandboxes):
                    if time.monotonic() > deadline:
                        log.error("sandbox_outlived_kill", job_id=job_id, seconds=SANDBOX_END_SECONDS)
                        return
                    await asyncio.sleep(0.01)
                sandboxes = kill_sandboxes(marker) if rescan else []
            return
        if self.run_as is None or self._running:
            return
        if killed := kill_processes_of(self.run_as.uid):
            log.warning("leftover_processes_killed", job_id=job_id, user=self.run_as.name, processes=killed)

    def _init_of(self, job_id: str) -> int | None:
        """The PID of the run's namespace init, as bwrap wrote it (None if it did not); the job's pipe is closed."""
        write = self._inherit.pop(job_id, None)
        if write is not None:
            os.close(write)  # the command was never started
        read = self._info.pop(job_id, None)
        if read is None:
            return None
        try:
            os.set_blocking(read, False)
            said = os.read(read, 65536)  # one write, as bwrap started the init; b"" if it never did
        except OSError:
            return None  # nothing written, and bwrap not yet reaped (the run was cancelled)
        finally:
            os.close(read)
        try:
            return int(json.loads(said)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None


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


def local_driver(settings: RunnerSettings, run_as: RunAs | None, user: RunAs | None) -> LocalDriver:
    """The local driver in its sandbox, once a probe shows the sandbox works here; exits naming what is missing."""
    if settings.local_sandbox == "none":
        log.warning(
            "local_sandbox_disabled",
            detail="LOCAL_SANDBOX=none: local apps run UNCONFINED and can read other jobs' directories, "
            "reach the network and signal the runner",
        )
        return LocalDriver(run_as)
    inside = (user.uid, user.gid) if user is not None and os.geteuid() == 0 else None
    bwrap = Bubblewrap.find(user=inside, apps_dir=settings.apps_dir, work_dir=settings.work_dir)
    bwrap.probe(settings.work_dir)
    # This runner has started nothing yet: a sandbox of WORK_DIR is an earlier incarnation's leftover.
    if killed := kill_sandboxes(f"{settings.work_dir}/"):
        log.warning("leftover_sandboxes_killed", work_dir=str(settings.work_dir), sandboxes=len(killed))
    return LocalDriver(run_as, bwrap=bwrap)


def offered(settings: RunnerSettings) -> dict[str, Driver]:
    """The drivers this runner offers, by name; exits if the launcher, ``RUN_AS_USER`` or a sandbox cannot work."""
    launch.check()
    run_as = RunAs.resolve(settings.run_as_user) if settings.run_as_user else None
    own_work_dir(settings.work_dir)
    if run_as is not None:
        run_as.check_reachable(settings.work_dir)
    user = app_user(run_as)
    drivers: dict[str, Driver] = {}
    if "local" in settings.drivers():
        drivers["local"] = local_driver(settings, run_as, user)
    if "docker" in settings.drivers():
        drivers["docker"] = docker = DockerDriver(settings.docker_command, run_as=user, host=settings.docker_host)
        docker.probe()
    room = shutil.disk_usage(settings.work_dir).total
    if settings.max_job_disk_mb * 2**20 * settings.runner_concurrency > room:
        log.warning(
            "work_dir_smaller_than_its_jobs_may_use",
            work_dir=str(settings.work_dir),
            size_mb=room // 2**20,
            max_job_disk_mb=settings.max_job_disk_mb,
            runner_concurrency=settings.runner_concurrency,
        )
    return drivers
