"""A workflow engine's container image, built offline: Snakemake with its TES executor and S3 storage plugins.

No registry is reachable, so the image is a root assembled from this machine: the Python that
runs the tests (kept at its own path, whose RUNPATH names it), its standard library, the
packages ``ENGINE_PACKAGES`` installed from the package index into its site-packages, the
shared libraries ``ldd`` lists for all of them, Debian's bash (the TES plugin's command is
``/bin/bash /tmp/run_snakemake.sh``) and git (the submitting snakemake runs ``git ls-files`` to
pack the workflow's sources), and busybox-static for the rest of /bin. It is ``podman
import``-ed, tagged by a hash of what goes in, so it is built once per machine and change.

The one image plays both parts of a Snakemake-on-TES run: the ``snakemake --executor tes``
process that submits the tasks (in a container of its own, so the plugin's ``py-tes<0.5`` stays
out of the project's environment), and every task's executor. Each task's script runs ``pip
install --target .snakemake/pip-deployments snakemake-storage-plugin-s3`` first; the image
answers it offline from a wheelhouse at ``/opt/wheels`` (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

from tests.helpers.containers import ensure_podman

IMAGE = "localhost/quern-snakemake"
RECIPE = 3  # bump when _root changes what goes into the image
ENGINE_PACKAGES = (
    "snakemake==9.27.1",
    "snakemake-executor-plugin-tes==0.1.3",
    "snakemake-storage-plugin-s3==0.3.6",
    "pip",
)
# What each task installs again (the plugin's auto-deployment), served from the wheelhouse.
DEPLOYED_PACKAGES = ("snakemake-storage-plugin-s3==0.3.6",)
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PIP_NO_INDEX": "1",
    "PIP_FIND_LINKS": "/opt/wheels",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_ROOT_USER_ACTION": "ignore",
}
# Parts of the standard library no engine needs (tests, GUIs) and what they would drag in.
_SKIPPED = {"test", "site-packages", "tkinter", "idlelib", "turtledemo", "ensurepip"}
_SCRIPTS = {"snakemake": "snakemake", "pip": "pip", "pip3": "pip"}


def _podman(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["podman", *args], capture_output=True, timeout=600, check=False)


def _interpreter() -> Path:
    """The real interpreter behind the tests' venv (its base prefix)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(sys.base_prefix) / "bin" / version


def image_tag() -> str:
    """The image's name with a hash of what goes in: the interpreter, bash, busybox, the pins and the recipe."""
    digest = hashlib.sha256()
    tools = (
        Path("/bin/bash"),
        Path(shutil.which("git") or "/usr/bin/git"),
        Path(shutil.which("busybox") or "/bin/busybox"),
    )
    for path in (_interpreter(), *tools):
        digest.update(path.resolve().read_bytes())
    digest.update(repr((RECIPE, ENGINE_PACKAGES, DEPLOYED_PACKAGES, sorted(ENV.items()), sorted(_SKIPPED))).encode())
    return f"{IMAGE}:{digest.hexdigest()[:16]}"


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def _libraries(binaries: list[Path]) -> set[Path]:
    """The shared libraries (and the loader) that ``ldd`` resolves for ``binaries``."""
    found: set[Path] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            words = line.split()
            if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
                found.add(Path(words[words.index("=>") + 1]))
            elif words and words[0].startswith("/"):
                found.add(Path(words[0]))
    return found


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode = tarfile.DIRTYPE, mode
    tar.addfile(entry)


def _add_text(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode = len(data), mode
    tar.addfile(entry, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    entry = tarfile.TarInfo(name)
    entry.type, entry.linkname = tarfile.SYMTYPE, target
    tar.addfile(entry)


def _root(staging: Path) -> Path:
    """The image's root as a tarball in ``staging``: interpreter, packages, libraries, shells, wheelhouse."""
    python = _interpreter().resolve()
    prefix = Path(sys.base_prefix).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    site = staging / "site-packages"
    wheels = staging / "wheels"
    _pip("install", "--quiet", "--prefer-binary", "--target", str(site), *ENGINE_PACKAGES)
    _pip("wheel", "--quiet", "--prefer-binary", "--wheel-dir", str(wheels), *DEPLOYED_PACKAGES)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts naming this host's interpreter
    git = Path(shutil.which("git") or "/usr/bin/git")
    binaries = [python, Path("/bin/bash"), git, *stdlib.glob("lib-dynload/*.so"), *site.rglob("*.so*")]
    binaries = [b for b in binaries if b.is_file() and "tkinter" not in b.name]
    archive = staging / "root.tar"
    with tarfile.open(archive, mode="w") as tar:
        for directory in (
            "bin",
            "usr",
            "usr/bin",
            "usr/lib",
            "usr/lib64",
            "usr/local",
            "usr/local/bin",
            "etc",
            "opt",
            "root",
        ):
            _add_dir(tar, directory)
        _add_dir(tar, "tmp", 0o1777)
        _add_link(tar, "lib", "usr/lib")
        _add_link(tar, "lib64", "usr/lib64")
        for library in sorted(_libraries(binaries)):
            if library.is_relative_to(prefix) or library.is_relative_to(staging):
                continue  # libpython, added with the interpreter below; a wheel's own libraries, in site-packages
            # Debian merged /lib into /usr/lib; the image keeps that shape.
            name = str(library).lstrip("/")
            name = name if name.startswith("usr/") else f"usr/{name}"
            tar.add(str(library.resolve()), name)
        tar.add(str(python), str(python).lstrip("/"))
        for library in prefix.glob("lib/libpython*.so*"):
            tar.add(str(library.resolve()), str(library).lstrip("/"))
        tar.add(
            str(stdlib),
            str(stdlib).lstrip("/"),
            filter=lambda info: None if _SKIPPED & set(Path(info.name).parts) else info,
        )
        tar.add(str(site), f"{str(stdlib).lstrip('/')}/site-packages")
        tar.add(str(wheels), "opt/wheels")
        for name in ("python", "python3", python.name):
            _add_link(tar, f"usr/local/bin/{name}", str(python))
        for script, module in _SCRIPTS.items():
            _add_text(tar, f"usr/local/bin/{script}", f'#!/bin/sh\nexec {python} -m {module} "$@"\n', 0o755)
        busybox = Path(shutil.which("busybox") or "/bin/busybox").resolve()
        tar.add(str(busybox), "bin/busybox")
        applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet not in {"busybox", "bash"}:
                _add_link(tar, f"bin/{applet}", "busybox")
        tar.add("/bin/bash", "bin/bash")
        tar.add(str(git.resolve()), "usr/bin/git")
        _add_text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        _add_text(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return archive


def build_engine_image() -> str:
    """The Snakemake image (see the module docstring), imported unless this machine already has it."""
    ensure_podman()
    image = image_tag()
    if _podman("image", "exists", image).returncode == 0:
        return image
    changes = [f"--change=ENV {key}={value}" for key, value in ENV.items()]
    with tempfile.TemporaryDirectory(prefix="quern-engine-image-") as staging:
        done = _podman("import", *changes, str(_root(Path(staging))), image)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return image


if __name__ == "__main__":
    print(build_engine_image())
