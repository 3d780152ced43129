"""Background processes that the local stack and the tests start, and stop by pid file, never by name.

A pid file holds the pid and the process's start time (from /proc), so a stale file whose pid
was reused by an unrelated program is recognised and that program is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# What a runner needs on its machine to sandbox local apps (LOCAL_SANDBOX=bwrap), by command.
SANDBOX_PACKAGES = {"bwrap": "bubblewrap"}
# Children started by this interpreter, kept so they are reaped rather than left as zombies.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def venv_bin(name: str) -> str:
    """A console script installed beside this interpreter."""
    return str(Path(sys.executable).parent / name)


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    """Whether GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(200 <= response.status < 300)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response and its socket
        return False
    except (urllib.error.URLError, OSError):
        return False


def wait_until(check: Callable[[], bool], what: str, *, timeout: float, process: Process | None = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` (and the log of a process that died)."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and not process.running():
            raise RuntimeError(f"{process.name} exited while waiting for {what}; see {process.logfile}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(*texts: str) -> list[int]:
    """The processes whose command line holds any of ``texts`` (a job id, a marker)."""
    needles = [text.encode() for text in texts]
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes()
        except OSError:
            continue
        if any(needle in line for needle in needles):
            found.append(int(cmdline.parent.name))
    return found


@dataclass
class Process:
    """A named background process with its own session, log file and pid file."""

    name: str
    argv: list[str]
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    log_offset: int = 0

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid from the pid file if that process is still the one we started."""
        try:
            pid_text, started = self.pidfile.read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _start_time(pid) == started else None

    def running(self) -> bool:
        """Whether the process we started is alive (zombies count as gone)."""
        pid = self.pid()
        return pid is not None and alive(pid)

    def start(self) -> bool:
        """Start unless already running; returns whether it started now."""
        if self.running():
            return False
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            self.log_offset = log.tell()
            child = subprocess.Popen(
                self.argv,
                cwd=PROJECT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[child.pid] = child
        self.pidfile.write_text(f"{child.pid} {_start_time(child.pid)}\n")
        return True

    def logged(self, event: str) -> bool:
        """Whether this run of the process has logged a JSON line with ``event``."""
        try:
            with self.logfile.open("rb") as handle:
                handle.seek(self.log_offset)
                return f'"event": "{event}"'.encode() in handle.read()
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL it after ``timeout``; returns whether anything was stopped."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while _start_time(pid) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _start_time(pid) is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)
        return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def apt_install(*packages: str) -> None:
    """Install Debian packages with apt-get, as root; fail saying what to install when that is not possible."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"install the Debian packages {' '.join(packages)} (apt-get needs root)")
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    subprocess.run(["apt-get", "update", "-q"], check=True, **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, **quiet)  # type: ignore[call-overload]


def ensure_commands(packages: Mapping[str, str]) -> list[str]:
    """Install the package of each command (command -> Debian package) that is not on PATH; returns those installed."""
    missing = sorted({package for command, package in packages.items() if shutil.which(command) is None})
    if missing:
        apt_install(*missing)
    return missing


def ensure_rabbitmq(host: str = "127.0.0.1", port: int = 5672) -> bool:
    """Reuse a running RabbitMQ or start Debian's (installing it as root); returns whether we started it."""
    if port_open(host, port):
        return False
    if shutil.which("rabbitmq-server") is None:
        apt_install("rabbitmq-server")
        if port_open(host, port):  # the package's own service start may have brought it up
            return True
    subprocess.run(["rabbitmq-server", "-detached"], check=True, stdout=subprocess.DEVNULL)
    wait_until(
        lambda: subprocess.run(["rabbitmq-diagnostics", "-q", "ping"], capture_output=True).returncode == 0,
        "rabbitmq-diagnostics ping",
        timeout=120,
    )
    wait_until(lambda: port_open(host, port), f"RabbitMQ on {host}:{port}", timeout=60)
    return True


def stop_rabbitmq() -> None:
    """Stop the RabbitMQ node we started."""
    subprocess.run(["rabbitmqctl", "stop"], check=False, capture_output=True)
