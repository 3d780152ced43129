"""The user apps run as: ``RUN_AS_USER``, or nobody under a runner started as root, never root itself."""

from __future__ import annotations

import os
import pwd
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from shared.settings import ConfigError

NOBODY = 65534


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


def app_user(run_as: RunAs | None) -> RunAs | None:
    """Who apps run as: ``RUN_AS_USER``, else nobody under a runner started as root, else the runner's own user."""
    if run_as is not None or os.geteuid() != 0:
        return run_as
    try:
        entry = pwd.getpwuid(NOBODY)
    except KeyError:
        return RunAs("nobody", NOBODY, NOBODY)
    return RunAs(entry.pw_name, NOBODY, entry.pw_gid)


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
