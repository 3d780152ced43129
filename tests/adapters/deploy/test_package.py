"""What a non-editable install gets: the wheel the Dockerfile builds (and the sdist) carry the package's data files.

The data files here are the docs page's assets and the GA4GH TES document; without them ``/docs``
would be a blank page in the image (and the gateway would not start, missing the TES document)
while every editable checkout, the tests' included, still worked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

STATIC = "services/gateway/plumbing/static"
TES_SPEC = "services/gateway/surfaces/tes/spec"  # the GA4GH TES document the TES surface publishes
BUILD = "import sys; from setuptools import build_meta as b; out = sys.argv[1]; b.build_wheel(out); b.build_sdist(out)"


def copied_before_the_wheel(dockerfile: str) -> list[str]:
    """What the Dockerfile copies into its build stage before ``pip wheel``: all a wheel is built from."""
    stage = dockerfile.split("pip wheel", 1)[0]
    return re.findall(r"^COPY (?!--)(.+) \S+$", stage, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def dist(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built (with no network) from a copy of exactly what the Dockerfile copies."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for names in copied_before_the_wheel((project / "deploy/Dockerfile").read_text()):
        for name in names.split():
            if (project / name).is_dir():
                shutil.copytree(project / name, source / name, ignore=junk)
            else:
                shutil.copy2(project / name, source / name)
    subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=source, check=True, capture_output=True, timeout=300)
    return out


def data_files(project: Path) -> set[str]:
    found = {
        path.relative_to(project).as_posix()
        for folder in (STATIC, TES_SPEC)
        for path in (project / folder).rglob("*")
        if path.is_file()
    }
    assert {f"{STATIC}/docs.js", f"{STATIC}/swagger-ui/swagger-ui-bundle.js", f"{STATIC}/swagger-ui/LICENSE"} <= found
    assert {f"{TES_SPEC}/tes-1.1.openapi.yaml", f"{TES_SPEC}/tes-1.1.LICENSE"} <= found
    return found


def test_the_wheel_carries_the_docs_page_assets_and_their_licenses(project: Path, dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert data_files(project) <= set(archive.namelist())


def test_the_sdist_carries_the_docs_page_assets_and_their_licenses(project: Path, dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert data_files(project) <= names
