"""Fixtures of the runner's adapter tests: directories another user can enter."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user (the run-as user, nobody) can enter: pytest's own tmp_path is private to root."""
    directory = Path(tempfile.mkdtemp(prefix="quern-runner-"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)
