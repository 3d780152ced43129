"""The container driver: each job in a container of its own, through the docker or podman command line.

The runner runs ``DOCKER_COMMAND run`` in place of the app, with the job's ``inputs/``
(read-only), ``run/`` and ``tmp/`` bind-mounted at the same paths, so the argv means the same
inside; no network unless the app's definition asks for it, no capabilities, no new
privileges, a read-only root, and memory, process and open-file limits (podman wants the
last two explicit). The container is named after the job and removed before and after the run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import structlog

from services.runner import launch
from services.runner.sandbox import Sandbox
from services.runner.users import RunAs
from shared.apps import AppSpec
from shared.settings import ConfigError

log = structlog.get_logger()
CLEAN_UP_SECONDS = 60.0
PROBE_SECONDS = 30.0
# Podman needs explicit open-file and process limits; these apply when an app sets none.
DEFAULT_OPEN_FILES = 1024
DEFAULT_PROCESSES = 1024
# The engine's command line runs helpers from the sbin directories (podman's netavark calls iptables there).
ENGINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerDriver:
    """The app runs in a container of the app's image, through the docker (or podman) command line."""

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

    def confined(self, name: str, *, job_id: str, network: bool) -> list[str]:
        """The start of a ``run`` command line: the container's name and job label, its init, and what it may not do."""
        return [
            self.executable,
            "run",
            "--rm",
            "--name",
            name,
            "--label",
            f"quern.job={job_id}",
            "--init",  # a PID 1 that forwards SIGTERM on cancel and timeout, and reaps the app's children
            *([] if network else ["--network", "none"]),
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]

    def command(self, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> list[str]:
        limits = spec.limits
        docker = [
            *self.confined(self.container(sandbox.job_id), job_id=sandbox.job_id, network=spec.network),
            "--read-only",
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
        open_files = limits.open_files or DEFAULT_OPEN_FILES
        processes = limits.processes or DEFAULT_PROCESSES
        docker += ["--ulimit", f"nofile={open_files}:{open_files}", "--ulimit", f"nproc={processes}:{processes}"]
        docker += ["--pids-limit", str(processes)]
        # The image's own PATH stays unless the app declares one.
        env = {key: value for key, value in sandbox.environment(spec.env).items() if key != "PATH" or key in spec.env}
        for key, value in env.items():
            docker += ["--env", f"{key}={value}"]
        assert spec.image is not None  # AppSpec requires one for this driver
        docker += ["--entrypoint", argv[0], spec.image, *argv[1:]]
        return launch.command(docker)  # in the job's root, where the runner starts it

    def environment(self, sandbox: Sandbox, spec: AppSpec) -> dict[str, str]:
        # The CLI reads ~/.docker/config.json (credential helpers, proxies): never from a directory the app owns.
        env = {"PATH": ENGINE_PATH, "HOME": str(sandbox.root)}
        if self.host is not None:
            env["DOCKER_HOST"] = self.host
        return env

    def probe(self) -> None:
        """Exit unless ``DOCKER_COMMAND version`` answers: without an engine every job of this driver would fail."""
        try:
            done = subprocess.run(
                [self.executable, "version"],
                env=self.cli_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROBE_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = str(exc)
        else:
            if done.returncode == 0:
                return
            said = done.stderr.decode(errors="replace").strip()[-500:] or f"exit code {done.returncode}"
        raise ConfigError(
            f"configuration error:\n  DOCKER_COMMAND: {self.executable} version failed ({said}); the docker driver "
            "needs a docker or podman engine this runner may use (see docs/sandboxing.md)"
        )

    def cli_environment(self) -> dict[str, str]:
        """The environment of the engine's command line when it is not running an app."""
        return {"PATH": ENGINE_PATH, **({"DOCKER_HOST": self.host} if self.host else {})}

    def pass_fds(self, job_id: str) -> tuple[int, ...]:
        return ()

    async def clean_up(self, job_id: str, *, fresh: bool = False) -> None:
        """Remove the job's containers: every one labelled with it (the app's, or each of a TES task's executors)."""
        if fresh:
            return  # no run of this job has started a container
        found = await self._cli(job_id, "ps", "--all", "--quiet", "--filter", f"label=quern.job={job_id}")
        # By id, as listed; by the app container's name only where the engine could not list them. Never both in
        # one call: podman 4 removes nothing, and says nothing, when a name among those given is unknown.
        names = found[1].decode().split() if found is not None and found[0] == 0 else [self.container(job_id)]
        if not names:
            return
        code, _, err = await self._cli(job_id, "rm", "--force", *names) or (0, b"", b"")
        # docker says "No such container", podman "no such container" (one removed meanwhile)
        if code != 0 and b"no such container" not in err.lower():
            log.warning("container_clean_up_failed", job_id=job_id, error=err.decode(errors="replace")[-500:])

    async def _cli(self, job_id: str, *args: str) -> tuple[int, bytes, bytes] | None:
        """The engine's command's exit code, stdout and stderr; None, with a warning, if it did not end."""
        try:
            process = await asyncio.create_subprocess_exec(
                self.executable,
                *args,
                env=self.cli_environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("container_clean_up_failed", job_id=job_id, error=repr(exc))
            return None
        try:
            out, err = await asyncio.wait_for(process.communicate(), CLEAN_UP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning(
                "container_clean_up_failed", job_id=job_id, error=f"docker {args[0]} took over {CLEAN_UP_SECONDS} s"
            )
            return None
        return process.returncode or 0, out, err
