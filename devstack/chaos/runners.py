"""Extra runner processes for the chaos scenarios: named, with settings of their own, started and stopped at will."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from devstack.processes import Process, wait_until
from devstack.stack import Stack


def runner(stack: Stack, name: str, **env: str) -> Process:
    """A runner of the stack under its own process name and work directory, with ``env`` on top of the stack's."""
    work = stack.state_dir / f"work-{name}"
    settings = stack.env() | {"WORK_DIR": str(work), "RUNNER_ID": f"chaos-{name}"} | env
    return Process(f"runner-{name}", [sys.executable, "-m", "services.runner"], stack.state_dir, settings)


def start(process: Process) -> None:
    """Start a runner and wait until it consumes."""
    process.start()
    wait_until(lambda: process.logged("worker_started"), f"{process.name} to start", timeout=60, process=process)


def stop_gracefully(process: Process, timeout: float = 120) -> float:
    """SIGTERM a runner and wait until it exited (it drains and hands its jobs back); the seconds it took."""
    started = time.monotonic()
    process.stop(timeout=timeout)
    return time.monotonic() - started


def work_dir(process: Process) -> Path:
    """Where this runner makes its jobs' directories."""
    return Path(process.env["WORK_DIR"])
