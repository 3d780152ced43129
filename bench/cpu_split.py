"""Where the CPU goes: ``python -m bench.cpu_split [--jobs N] [--py-spy DIR]``.

Runs N trivial jobs through a stack of its own with the throughput measurement's own code
(``bench.throughput.quern_seconds``), and prints the CPU seconds each process spent per job:
quern's three services (with the apps they started), the Mongo and S3 stand-ins and RabbitMQ.
With ``--py-spy DIR`` it also records a py-spy profile of each quern service and stand-in into
DIR (``py-spy record``, flame-graph SVGs). This is the profile behind docs/benchmarks.md's explanations.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import tempfile
from pathlib import Path

import psutil

from bench import throughput
from bench.harness import bench_stack
from devstack.processes import venv_bin
from devstack.stack import Stack


def processes(stack: Stack) -> dict[str, psutil.Process]:
    """The stack's processes by role, and the machine's RabbitMQ.

    Only this process's descendants count as the stack's: on a shared machine other stacks run the same commands.
    """
    found: dict[str, psutil.Process] = {}
    ours = {child.pid for child in psutil.Process().children(recursive=True)}
    marks = {
        "gateway": ["-m", "services.gateway"],
        "runner": ["-m", "services.runner"],
        "results": ["-m", "services.results"],
        "mongo stand-in": ["--port", str(stack.ports.mongo)],
        "s3 stand-in": ["-p", str(stack.ports.s3)],
    }
    for process in psutil.process_iter(["cmdline", "name"]):
        words = process.info["cmdline"] or []
        pairs = set(itertools.pairwise(words))
        for role, mark in marks.items():
            if tuple(mark) in pairs and process.pid in ours:
                found.setdefault(role, process)
        if process.info["name"] == "beam.smp":
            found.setdefault("rabbitmq", process)
    return found


def cpu_seconds(process: psutil.Process) -> float:
    """User and system time of the process, its reaped children and its living ones."""
    times = process.cpu_times()
    alive = sum(sum(child.cpu_times()[:2]) for child in process.children(recursive=True))
    return float(times.user + times.system + times.children_user + times.children_system + alive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_split", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--py-spy", type=Path, default=None, help="also record py-spy profiles into this directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quern-cpu-") as work, bench_stack(Path(work)) as stack:
        found = processes(stack)
        before = {role: cpu_seconds(process) for role, process in found.items()}
        spies = []
        if args.py_spy is not None:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            for role, process in found.items():
                if role != "rabbitmq":
                    out = args.py_spy / f"{role.replace(' ', '-')}.svg"
                    command = [venv_bin("py-spy"), "record", "-o", str(out), "-p", str(process.pid), "-r", "50"]
                    spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        took = throughput.quern_seconds(stack, args.jobs)  # the throughput measurement's own run
        after = {role: cpu_seconds(process) for role, process in found.items()}
        for spy in spies:
            spy.send_signal(2)
            spy.wait(timeout=120)
    print(f"{args.jobs} jobs in {took:.1f} s: {args.jobs / took:.1f} jobs/s on {os.cpu_count()} cores")
    total = 0.0
    for role in sorted(after, key=lambda r: before[r] - after[r]):
        spent = after[role] - before[role]
        total += spent
        print(f"  {role:15} {spent:7.2f} s CPU  {1000 * spent / args.jobs:6.1f} ms per job")
    print(f"  {'all':15} {total:7.2f} s CPU  {1000 * total / args.jobs:6.1f} ms per job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
