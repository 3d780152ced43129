"""What starting an app costs the runner's machine: ``python -m bench.launches [--count N]``.

Starts ``true`` N times through the local driver's launcher, unconfined (as the runner's user,
and as nobody under a root runner) and in its bubblewrap sandbox, the way
``services.runner.processes`` does (its own session, in the job's root), one after another, and
prints the wall time and the CPU (user and system, of the launcher and the app, from
``getrusage``) per start. Issue 19: the Python launcher cost ~25 ms of CPU per job.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench.latency import TRUE_APP
from services.runner.bubblewrap import Bubblewrap
from services.runner.drivers import LocalDriver
from services.runner.sandbox import Sandbox
from services.runner.users import NOBODY, RunAs
from shared.apps import AppSpec


def children_cpu() -> float:
    """CPU seconds of every reaped child so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(driver: LocalDriver, sandbox: Sandbox, count: int) -> tuple[float, float]:
    """Milliseconds of wall time and of CPU per start of ``true`` through ``driver``."""
    spec = AppSpec.model_validate(TRUE_APP)
    cpu, started = children_cpu(), time.perf_counter()
    for _ in range(count):
        command = driver.command(["/bin/true"], sandbox=sandbox, spec=spec)
        env = driver.environment(sandbox, spec)
        done = subprocess.run(command, env=env, cwd=sandbox.root, start_new_session=True, check=False)
        assert done.returncode == 0, done
    wall = time.perf_counter() - started
    return 1000 * wall / count, 1000 * (children_cpu() - cpu) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.launches", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quern-launches-") as work:
        os.chmod(work, 0o711)
        sandbox = Sandbox(Path(work), "01BENCH")
        sandbox.create()
        drivers = {"as the runner": LocalDriver()}
        inside = None
        if os.geteuid() == 0:
            sandbox.hand_over(NOBODY, NOBODY)
            drivers["as nobody"] = LocalDriver(RunAs("nobody", NOBODY, NOBODY))
            inside = (NOBODY, NOBODY)
        apps = Path(work, "apps")
        apps.mkdir()
        bwrap = Bubblewrap.find(user=inside, apps_dir=apps, work_dir=Path(work))
        drivers["in the sandbox"] = LocalDriver(bwrap=bwrap)
        for name, driver in drivers.items():
            wall, cpu = measure(driver, sandbox, args.count)
            print(f"{args.count} starts of true {name:14} {wall:6.2f} ms wall  {cpu:6.2f} ms CPU per start")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
