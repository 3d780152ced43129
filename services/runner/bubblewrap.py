"""The local driver's sandbox: each app in bubblewrap (``bwrap``) namespaces of its own, seeing only its job.

The app gets its own mount, PID, IPC, UTS and (unless its definition sets ``network``) network
namespaces, and a root made of: ``/usr`` and the ``/bin``, ``/lib``… links, a few ``/etc``
files, the runner's Python prefixes (for ``{python}`` apps) and ``$APPS_DIR`` (the deployed
programs, which an app registered through the API may name by path), all read-only; the job's
``inputs/`` read-only and ``run/``, ``tmp/`` writable, at the same paths as outside (argv holds
absolute paths); a new ``/proc``, ``/dev`` and ``/tmp``. Nothing else of ``WORK_DIR``, of the
runner's files or of its environment is there.

A runner started as root runs bwrap as root (it can mount what the app's user could not
reach) and the app drops to its user inside with ``setpriv``, so it is that uid on the host
too. A runner started as another user has bwrap make a user namespace; the app is uid 65534
inside it and the runner's user outside.

``probe`` runs ``true`` in exactly these namespaces at startup: a runner whose sandbox cannot
work refuses to start rather than run apps unconfined.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.runner.launch import tool
from services.runner.sandbox import Sandbox
from services.runner.users import NOBODY
from shared.settings import ConfigError

SYSTEM = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What programs read from /etc: users, name service, libraries, certificates, time zone, alternatives' links.
ETC = (
    "passwd", "group", "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "services", "protocols",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates", "localtime", "timezone",
    "mime.types", "fonts", "os-release",
)  # fmt: skip
# The CPU topology, so thread pools (OpenBLAS, os.cpu_count) size themselves as outside.
CPU_TOPOLOGY = Path("/sys/devices/system/cpu")
PROBE_SECONDS = 30.0
GUIDE = "see docs/sandboxing.md, or set LOCAL_SANDBOX=none to run local apps unconfined (not recommended)"


def python_prefixes() -> list[Path]:
    """The runner's interpreter trees, as named and resolved: a venv and the Python it is made from."""
    found = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        found += [Path(prefix), Path(prefix).resolve()]
    return found


def outermost(paths: Iterable[Path], *, covered: Iterable[Path] = ()) -> list[Path]:
    """The paths not inside another one (nor inside ``covered``), sorted; the root itself is never offered."""
    kept: list[Path] = []
    roots = list(covered)
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if len(path.parts) > 1 and not any(path.is_relative_to(root) for root in [*roots, *kept]):
            kept.append(path)
    return sorted(kept)


def _parents(paths: Iterable[Path]) -> set[Path]:
    """The directories above ``paths`` that the sandbox's root lacks (all but ``/`` and what ``/usr`` holds)."""
    return {p for path in paths for p in path.parents if len(p.parts) > 1 and not p.is_relative_to("/usr")}


@dataclass(frozen=True)
class _Fixed:
    """bwrap's arguments alike for every sandbox of a runner: system trees, read-only files' parents and binds."""

    system: list[str]
    parents: frozenset[Path]
    dirs: list[str]
    binds: list[str]


@dataclass(frozen=True)
class Bubblewrap:
    """How this runner wraps an app in bwrap: the tools, the app's user, and the read-only trees beside ``/usr``."""

    bwrap: str
    env: str  # coreutils env: gives the app back the default SIGTERM the launcher ignored
    setpriv: str  # util-linux setpriv: no new privileges; drops a root runner's app to its user after the mounts
    user: tuple[int, int] | None  # the app's uid and gid when the runner is root; None: a user namespace
    apps_dir: Path
    prefixes: tuple[Path, ...]

    @classmethod
    def find(cls, *, user: tuple[int, int] | None, apps_dir: Path, work_dir: Path) -> Bubblewrap:
        """The sandbox for this machine; exits naming the tool that is missing, or a tree that would show WORK_DIR."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise ConfigError(
                f"configuration error:\n  LOCAL_SANDBOX: bwrap is not on PATH (Debian package bubblewrap); {GUIDE}"
            )
        prefixes = tuple(outermost(python_prefixes(), covered=[Path("/usr")]))
        for tree in (*prefixes, apps_dir):
            if work_dir.resolve().is_relative_to(tree.resolve()):
                raise ConfigError(
                    f"configuration error:\n  WORK_DIR: {work_dir} is inside {tree}, which every app sees; "
                    "it would show apps each other's jobs"
                )
        return cls(
            bwrap=bwrap, env=tool("env"), setpriv=tool("setpriv"), user=user, apps_dir=apps_dir, prefixes=prefixes
        )

    def command(
        self, argv: list[str], *, sandbox: Sandbox, env: Mapping[str, str], network: bool, info_fd: int | None = None
    ) -> list[str]:
        """bwrap's command line that runs ``argv`` in the job's sandbox with exactly ``env``.

        With ``info_fd``, bwrap writes to that descriptor (JSON) which process is its namespace's init.
        """
        args = [self.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        if not network:
            args.append("--unshare-net")
        if self.user is None:
            args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        # Without --new-session: the runner stops an app by signalling its process group, which the
        # app must stay in; the session is already the launcher's own, with no terminal to inject into.
        args += ["--die-with-parent", "--hostname", "quern", "--ro-bind", "/usr", "/usr", *self._fixed.system]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        # /tmp before the job's directories: WORK_DIR is often under /tmp, and a later tmpfs would hide them.
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
        readable = [*self.deployed(), sandbox.inputs]
        writable = [sandbox.run, sandbox.tmp]
        # bwrap makes missing parents 0700, which the app's user could not pass through. The fixed
        # trees' parents come first, and include their own parents: each directory follows its parent.
        args += self._fixed.dirs
        for parent in sorted(_parents([*readable, *writable]) - self._fixed.parents):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += self._fixed.binds
        for path in readable:
            args += ["--ro-bind-try", str(path), str(path)]
        for path in writable:
            args += ["--bind", str(path), str(path)]
        args += ["--chdir", str(sandbox.run), "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        # env gives the app back the default SIGTERM the launcher ignored; setpriv comes last, as its
        # "--" ends what it reads (env would take an argv[0] holding "=" for a variable).
        inner = [self.env, "--default-signal=TERM", "--unset=PWD", self.setpriv]
        if self.user is not None:
            uid, gid = self.user
            inner += [f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
        return [*args, "--", *inner, "--no-new-privs", "--", *argv]

    @functools.cached_property
    def _fixed(self) -> _Fixed:
        """What every sandbox of this runner mounts alike (the base system, ``/etc``, Python), worked out once."""
        system = []
        for name in SYSTEM:
            path = Path("/", name)
            if path.is_symlink():
                system += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                system += ["--ro-bind", str(path), str(path)]
        readable = [Path("/etc", name) for name in ETC] + [CPU_TOPOLOGY, *self.prefixes]
        parents = _parents(readable)
        dirs = [arg for parent in sorted(parents) for arg in ("--perms", "0755", "--dir", str(parent))]
        binds = [arg for path in readable for arg in ("--ro-bind-try", str(path), str(path))]
        return _Fixed(system=system, parents=frozenset(parents), dirs=dirs, binds=binds)

    def deployed(self) -> list[Path]:
        """Each app's directory under ``$APPS_DIR``, at its path there (a link to a directory is mounted as one)."""
        try:
            return sorted(entry for entry in self.apps_dir.iterdir() if entry.is_dir())
        except OSError:
            return []

    def probe(self, work_dir: Path) -> None:
        """Run ``true`` in the namespaces and mounts apps get; exit with bwrap's own words if that fails."""
        probe = Path(tempfile.mkdtemp(prefix=".sandbox-probe-", dir=work_dir))
        try:
            box = Sandbox(work_dir, probe.name)
            box.create()
            if self.user is not None:
                box.hand_over(*self.user)
            command = self.command(["true"], sandbox=box, env={"PATH": "/usr/bin:/bin"}, network=False)
            try:
                done = subprocess.run(
                    command, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_SECONDS, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConfigError(f"configuration error:\n  LOCAL_SANDBOX: bwrap did not run: {exc}; {GUIDE}") from None
            if done.returncode != 0:
                said = done.stderr.decode(errors="replace").strip()[-500:] or f"exit code {done.returncode}"
                raise ConfigError(
                    f"configuration error:\n  LOCAL_SANDBOX: bubblewrap cannot make the app sandbox here ({said}); "
                    f"it needs {self.needs()}; {GUIDE}"
                )
        finally:
            Sandbox(work_dir, probe.name).remove()

    def needs(self) -> str:
        """What the host must allow for this runner's way of using bwrap."""
        if self.user is not None:
            return "root with CAP_SYS_ADMIN (mount, PID and network namespaces)"
        return "unprivileged user namespaces (user.max_user_namespaces > 0), allowed by seccomp and AppArmor"


def sandboxes_naming(marker: str) -> list[int]:
    """The bwrap processes (a sandbox's outer bwrap, its PID namespace's init) whose command line names ``marker``.

    Every process is looked at, through ``os`` (``Path.glob`` would stat each entry first).
    """
    needle = marker.encode()
    found = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        # The name first (one short read): the command line is read only of bwrap, from the process's memory.
        if _read(f"/proc/{pid}/comm", whole=False) != b"bwrap\n":
            continue
        argv = _read(f"/proc/{pid}/cmdline").split(b"\0")
        if any(needle in arg for arg in argv):
            found.append(pid)
    return found


def _read(path: str, *, whole: bool = True) -> bytes:
    """A /proc file: all of it (a command line may be longer than one read returns), or one read; b"" if gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            if not whole:
                return chunk
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return b"".join(chunks)


def sandboxes_alive(marker: str, pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that are still a bwrap naming ``marker``, or a bwrap still ending.

    A namespace's init loses its command line as it starts to exit, and becomes a zombie only once
    every process of its namespace has ended: until then its run is not over.
    """
    alive = []
    for pid in pids:
        stat = _read(f"/proc/{pid}/stat", whole=False)  # "PID (NAME) STATE ..."
        name, _, rest = stat.partition(b" (")[2].rpartition(b") ")
        if name != b"bwrap" or rest[:1] in (b"", b"Z", b"X"):
            continue
        argv = _read(f"/proc/{pid}/cmdline")
        if not argv or any(marker.encode() in arg for arg in argv.split(b"\0")):
            alive.append(pid)  # else another process has that PID now
    return alive


def kill_sandboxes(marker: str, pids: Iterable[int] | None = None) -> list[int]:
    """SIGKILL every bwrap whose command line names ``marker`` (a path under ``WORK_DIR``); the ones killed.

    Given ``pids``, those of them still alive (``sandboxes_alive``) instead.

    bwrap clears the parent-death signal the launcher set when it changes credentials, and sets its
    own a few milliseconds later: a runner killed in between leaves a sandbox running on, unowned.
    Its next incarnation (and the job's next run here) kills what is left.
    """
    killed = []
    for pid in sandboxes_naming(marker) if pids is None else sandboxes_alive(marker, pids):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed
