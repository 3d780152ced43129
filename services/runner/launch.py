"""How the runner starts an app: limits, user and death with the runner set before its first instruction.

A ``preexec_fn`` is unsafe in the threaded runner, and a Python launcher cost each job an
interpreter start (~25 ms of CPU), so the runner starts a chain of small programs of the base
system instead, each of which sets its part and then executes the next, all in one process:

    prlimit --core=0 [--as --cpu --fsize --nofile --nproc] --         util-linux; as the runner
    setpriv [--reuid --regid --clear-groups --inh-caps=-all] --pdeathsig=KILL --   util-linux
    [env [--chdir=DIR] [-i -- NAME=VALUE...]]                        coreutils; as the app's user
    sh -c CHECK quern ARGV...                                          then exec the app

The limits are set while the process is still the runner's user (root may raise a hard limit),
core dumps are off. ``setpriv`` drops to the app's user (no supplementary groups, no inheritable
or ambient capabilities) and sets the parent-death signal after that change, which would clear
it. ``CHECK`` then looks whether the runner is still its parent: a runner that died before the
death signal was set left it to init (or a subreaper), and it exits 137 without starting the
app. It ignores SIGTERM when asked (under bwrap, see ``services.runner.drivers``) and reports a
program that cannot be started with exit 127. The stages before the user change run with the launcher's own
environment; the app's (``env -i``) takes effect only once the process is the app's user, so
no variable an app definition declares (``LD_PRELOAD``) reaches a program running as root.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from services.runner.sandbox import BASE_ENV
from shared.settings import ConfigError

TOOLS = {"prlimit": "util-linux", "setpriv": "util-linux", "env": "coreutils", "sh": "dash"}
SYSTEM_PATH = "/usr/bin:/bin"  # where the launcher's programs are looked up: the base system's, never /usr/local
ENVIRONMENT = {"PATH": BASE_ENV["PATH"]}  # the launcher's own (bwrap's too); it names its programs by full path
# An app's limit by name: prlimit's option, and the unit of the app's value in what prlimit takes.
LIMITS = {
    "memory_mb": ("as", 2**20),
    "cpu_seconds": ("cpu", 1),
    "file_size_mb": ("fsize", 2**20),
    "open_files": ("nofile", 1),
    "processes": ("nproc", 1),
}
CANNOT_START = 127
RUNNER_GONE = 137  # as if killed by SIGKILL, which it would have been had the runner died a moment later


@functools.cache
def tool(name: str) -> str:
    """The absolute path of one of the launcher's programs; a configuration error if it is not installed."""
    path = shutil.which(name, path=SYSTEM_PATH)
    if path is None:
        raise ConfigError(
            f"configuration error:\n  the runner starts apps with {name} (Debian package {TOOLS[name]}), "
            "which is not installed"
        )
    return path


def check() -> None:
    """Exit with a configuration error unless every program the launcher needs is installed."""
    for name in TOOLS:
        tool(name)


def script(runner: int, *, ignore_term: bool) -> str:
    """The shell's part: the runner still its parent, SIGTERM ignored if asked, then the app; 127 if it fails."""
    lines = [
        f'[ "$PPID" = {runner} ] || exit {RUNNER_GONE}',
        # An exec that fails ends the shell through this trap; one that succeeds leaves no shell to run it.
        f'trap \'printf "quern: cannot start %s\\n" "$1" >&2; exit {CANNOT_START}\' EXIT',
    ]
    if ignore_term:
        # bwrap would die of the runner's SIGTERM and take its sandbox down with SIGKILL; ignored here
        # (and restored inside the sandbox), the signal reaches the app itself, which gets its grace.
        lines.append("trap '' TERM")
    lines += ["unset PWD", 'exec "$@"']  # the shell exports a PWD of its own; the app's environment is exact
    return "\n".join(lines)


def command(
    argv: list[str],
    *,
    limits: Mapping[str, int | None] | None = None,
    user: tuple[int, int] | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ignore_term: bool = False,
) -> list[str]:
    """The command line that starts ``argv`` with these limits, as ``user``, in ``cwd``, with exactly ``env``.

    Without ``cwd`` and ``env`` the app keeps the directory and the environment it was started
    with (the launcher's own: see ``ENVIRONMENT``).
    """
    chain = [tool("prlimit"), "--core=0"]
    for name, value in (limits or {}).items():
        if value is not None:
            option, unit = LIMITS[name]
            chain.append(f"--{option}={value * unit}")
    chain += ["--", tool("setpriv")]
    if user is not None:
        uid, gid = user
        chain += [f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all"]
    chain += ["--pdeathsig=KILL", "--"]
    if cwd is not None or env is not None:
        chain.append(tool("env"))
        if cwd is not None:
            chain.append(f"--chdir={cwd}")
        if env is not None:
            for key in env:
                if not key or "=" in key:
                    raise ValueError(f"illegal environment variable name {key!r}")
            chain += ["-i", "--", *(f"{key}={value}" for key, value in env.items())]
        else:
            chain.append("--")
    # The runner names itself: the check runs in the started process, which cannot tell its runner otherwise.
    return [*chain, tool("sh"), "-c", script(os.getpid(), ignore_term=ignore_term), "quern", *argv]
