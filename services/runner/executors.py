"""One TES executor's container: the command that runs it, and what it printed, kept where the task asked.

See ``services.runner.tasks`` for how a task's executors run one after another.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from services.runner import launch
from services.runner.containers import DEFAULT_OPEN_FILES, DEFAULT_PROCESSES, DockerDriver
from services.runner.sandbox import Sandbox
from services.runner.task_tree import Mount, host_path, open_in
from shared.models import Job
from shared.models.tasks import TaskExecutor, TaskSpec
from shared.settings import RunnerSettings

LOG_TAIL_BYTES = 10 * 1024


def executor_command(
    docker: DockerDriver,
    job: Job,
    index: int,
    executor: TaskExecutor,
    mounts: list[Mount],
    *,
    task_dir: Path,
    networked: bool,
    network_mode: str = "",
) -> list[str]:
    """The command that runs one executor in its container, through the launcher (so it dies with the runner).

    A networked executor joins ``network_mode`` (``TES_NETWORK``), or the engine's default network.
    """
    task = job.task
    assert task is not None
    command = docker.confined(f"{docker.container(job.id)}-{index}", job_id=job.id, network=networked)
    if networked and network_mode:
        command += ["--network", network_mode]
    command += ["--user", f"{docker.user[0]}:{docker.user[1]}", "--ulimit", "core=0"]
    command += ["--ulimit", f"nofile={DEFAULT_OPEN_FILES}:{DEFAULT_OPEN_FILES}"]
    command += ["--ulimit", f"nproc={DEFAULT_PROCESSES}:{DEFAULT_PROCESSES}", "--pids-limit", str(DEFAULT_PROCESSES)]
    resources = task.resources
    if resources is not None and resources.cpu_cores:
        command += ["--cpus", str(resources.cpu_cores)]
    if resources is not None and resources.ram_gb:
        memory = math.ceil(resources.ram_gb * 1024)
        command += ["--memory", f"{memory}m", "--memory-swap", f"{memory}m"]
    for mount in mounts:
        source = host_path(task_dir, mount.target)
        command += [
            "--mount",
            f"type=bind,source={source},target={mount.target}{'' if mount.writable else ',readonly'}",
        ]
    if executor.workdir:
        command += ["--workdir", executor.workdir]
    for key, value in executor.env.items():
        command += ["--env", f"{key}={value}"]
    if executor.stdin:
        command.append("--interactive")
    command += ["--entrypoint", executor.command[0], executor.image, *executor.command[1:]]
    return launch.command(command)  # in the job's root, where the runner starts it


def disk_limit(task: TaskSpec, settings: RunnerSettings) -> int:
    """The disk the job's directory may use, in MB: the task's ``disk_gb``, at most ``MAX_JOB_DISK_MB``."""
    asked = None if task.resources is None else task.resources.disk_gb
    return settings.max_job_disk_mb if not asked else min(math.ceil(asked * 1024), settings.max_job_disk_mb)


def captured(
    sandbox: Sandbox, starts: tuple[int, int], executor: TaskExecutor, *, owner: tuple[int, int] | None
) -> tuple[str, str]:
    """What one executor printed: written to its stdout/stderr paths (``owner``'s) if it names them; the ends."""
    tails = []
    streams = ((sandbox.stdout, starts[0], executor.stdout), (sandbox.stderr, starts[1], executor.stderr))
    for log_file, start, path in streams:
        with log_file.open("rb") as source:
            end = os.fstat(source.fileno()).st_size
            if path is not None:
                source.seek(start)
                with open_in(sandbox.task, path, write=True) as sink:
                    if owner is not None:
                        os.fchown(sink.fileno(), *owner)
                    left = end - start
                    while left > 0 and (block := source.read(min(left, 2**20))):
                        sink.write(block)
                        left -= len(block)
            source.seek(max(start, end - LOG_TAIL_BYTES))
            tails.append(source.read(end - source.tell()).decode("utf-8", errors="replace"))
    return tails[0], tails[1]
