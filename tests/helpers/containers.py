"""Real containers for the tests: podman, and a tiny image built offline from busybox-static, never pulled.

The image is ``podman import`` of a root made of Debian's static busybox (every applet linked
to it) plus the test apps' scripts under ``/app``, tagged by a hash of what went in, so it is
built once per change and reused. Podman, busybox-static and catatonit (podman's ``--init``)
are installed with apt-get when absent. ``podman_command`` writes the ``DOCKER_COMMAND`` the
runner gets: podman itself, or podman with runc where crun cannot run containers (crun refuses
hosts whose cgroups are in hybrid v1/v2 mode).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from devstack.processes import apt_install, ensure_commands

CONTAINER_PACKAGES = {"podman": "podman", "busybox": "busybox-static", "catatonit": "catatonit"}
IMAGE = "localhost/quern-test-apps"
# What the runner's container driver passes by default, without which podman cannot start a container here.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def ensure_podman() -> None:
    """Install podman, busybox-static and catatonit when absent (fails, never skips, where that is impossible)."""
    ensure_commands(CONTAINER_PACKAGES)


def _podman(*args: str, podman: str = "podman", stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([podman, *args], input=stdin, capture_output=True, timeout=300, check=False)


def build_image(scripts: dict[str, Path]) -> str:
    """The test image (busybox at /bin, ``scripts`` under /app by name), imported unless already there."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").resolve()
    digest = hashlib.sha256(busybox.read_bytes())
    for name, path in sorted(scripts.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    image = f"{IMAGE}:{digest.hexdigest()[:16]}"
    if _podman("image", "exists", image).returncode == 0:
        return image
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("app", 0o755), ("tmp", 0o1777), ("etc", 0o755)):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, mode
            tar.addfile(entry)
        tar.add(str(busybox), "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        for name, path in scripts.items():
            tar.add(str(path), f"app/{name}")
    done = _podman("import", "--change", "ENV PATH=/bin", "-", image, stdin=archive.getvalue())
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return image


def podman_command(directory: Path, image: str) -> Path:
    """A DOCKER_COMMAND for the runner: podman, with ``--runtime runc`` when its own runtime cannot start ``image``."""
    command = directory / "podman"
    runtime: list[str] = []
    run = ["run", "--rm", "--network", "none", *ULIMITS, "--entrypoint", "/bin/true", image]
    probe = _podman(*run)
    if probe.returncode != 0:
        if shutil.which("runc") is None:
            apt_install("runc")
        runtime = ["--runtime", "runc"]
        retried = _podman(*runtime, *run)
        assert retried.returncode == 0, retried.stderr.decode(errors="replace") + probe.stderr.decode(errors="replace")
    podman = shutil.which("podman")
    command.write_text(f'#!/bin/sh\nexec {podman} {" ".join(runtime)} "$@"\n')
    command.chmod(0o755)
    return command
