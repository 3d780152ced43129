"""A stand-in runner: a process that starts one app exactly as the runner does, for a test to kill outright."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from services.runner.drivers import Driver
from services.runner.sandbox import Sandbox
from shared.apps import AppSpec

REPO = Path(__file__).resolve().parents[2]
# The stand-in builds the driver's command itself, as the runner would: the command names the process that built it.
STAND_IN = """
import pickle, subprocess, sys, time
driver, argv, sandbox, spec = pickle.loads(bytes.fromhex(sys.argv[1]))
command = driver.command(argv, sandbox=sandbox, spec=spec)
fds = driver.pass_fds(sandbox.job_id)
subprocess.Popen(command, env=driver.environment(sandbox, spec), cwd=sandbox.root, start_new_session=True, pass_fds=fds)
time.sleep(60)
"""


def stand_in_runner(driver: Driver, argv: list[str], *, sandbox: Sandbox, spec: AppSpec) -> subprocess.Popen[bytes]:
    """A process that starts ``argv`` through ``driver`` in its own session, as ``run_process`` does, then waits."""
    state = pickle.dumps((driver, argv, sandbox, spec)).hex()
    return subprocess.Popen([sys.executable, "-c", STAND_IN, state], cwd=REPO)
