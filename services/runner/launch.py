"""Apply an app's resource limits and user to this process, then become the app.

Run as ``python -m services.runner.launch OPTIONS_JSON -- ARGV...``, where the options are
``{"limits": {...}, "user": [uid, gid] or null, "cwd": path or null, "ignore_term": bool}``. The runner
starts apps through this small program instead of a ``preexec_fn``, which is unsafe in a threaded
process: the limits and the user are set before the app's first instruction, and ``exec`` keeps
them. Under the local sandbox the launcher becomes ``bwrap``, not the app (see ``services.runner.drivers``).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1

_LIMITS = {
    "memory_mb": (resource.RLIMIT_AS, 2**20),
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "file_size_mb": (resource.RLIMIT_FSIZE, 2**20),
    "open_files": (resource.RLIMIT_NOFILE, 1),
    "processes": (resource.RLIMIT_NPROC, 1),
}


def die_with_the_runner(runner: int) -> None:
    """Have the kernel kill this process (and so the app it becomes) if the runner dies, even by SIGKILL.

    A runner killed outright cannot stop its apps; without this they would run on, unowned,
    while the job is recovered and run again elsewhere. The setting survives ``exec`` but not a
    change of user, so it is made after ``become``.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the runner's own stop is all there is
        return
    if os.getppid() != runner:  # the runner died before the setting took effect
        os._exit(137)


def become(uid: int, gid: int) -> None:
    """Drop to the run-as user: no supplementary groups, then the group, then the user (the order matters)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def command(options: dict[str, object], argv: list[str]) -> list[str]:
    """The runner's side: the command line that starts ``argv`` through this launcher with ``options``."""
    # -I: the launcher runs as root until it drops to the app's user, so it must not import from
    # its working directory, nor heed PYTHON* variables an app definition may declare. The runner
    # names itself: a launcher whose runner died before it looked would take init for its runner.
    named = {**options, "runner": os.getpid()}
    return [sys.executable, "-I", "-m", "services.runner.launch", json.dumps(named), "--", *argv]


def main(args: list[str]) -> None:
    """Set limits, drop core dumps and privileges, exec the app; exit 127 if it cannot be started."""
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m services.runner.launch OPTIONS_JSON -- ARGV...")
    options = json.loads(args[0])
    runner = int(options.get("runner", os.getppid()))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in options.get("limits", {}).items():
        if value is not None:
            which, unit = _LIMITS[name]
            resource.setrlimit(which, (value * unit, value * unit))
    if options.get("user") is not None:
        become(*options["user"])
    if options.get("cwd") is not None:
        os.chdir(options["cwd"])
    die_with_the_runner(runner)
    if options.get("ignore_term"):
        # bwrap would die of the runner's SIGTERM and take its sandbox down with SIGKILL; ignored here
        # (and restored inside the sandbox), the signal reaches the app itself, which gets its grace.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    argv = args[2:]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"quern: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
