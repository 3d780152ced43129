"""scripts/unasync.py: the blocking SDK is generated from the asyncio one, and ``--check`` catches a stale copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]


def unasync(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = root / "scripts" / "unasync.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The generator, its source and its output, with the project's ruff settings, in a directory of their own."""
    for part in ("scripts/unasync.py", "quern/_async", "quern/_sync", "pyproject.toml"):
        if (PROJECT / part).is_dir():
            shutil.copytree(PROJECT / part, tmp_path / part)
        else:
            (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PROJECT / part, tmp_path / part)
    return tmp_path


def test_the_committed_blocking_sdk_is_what_the_generator_writes() -> None:
    checked = unasync(PROJECT, "--check")
    assert checked.returncode == 0, checked.stderr


def test_check_names_a_generated_module_edited_by_hand(copy: Path) -> None:
    with (copy / "quern/_sync/jobs.py").open("a") as handle:
        handle.write("\nHAND_EDIT = 1\n")
    checked = unasync(copy, "--check")
    assert checked.returncode == 1
    assert "quern/_sync/jobs.py is stale" in checked.stderr and "HAND_EDIT" in checked.stderr


def test_check_fails_after_the_source_changes_until_the_generator_runs(copy: Path) -> None:
    source = copy / "quern/_async/apps.py"
    source.write_text(
        source.read_text()
        + "\n    async def versions(self, name: str) -> builtins.list[App]:\n"
        + '        answer = await self._connection.request("GET", f"/v1/apps/{name}/versions")\n'
        + '        return [App.model_validate(item) for item in answer.json()["items"]]\n'
    )
    assert unasync(copy, "--check").returncode == 1
    written = unasync(copy)
    assert written.returncode == 0 and "wrote quern/_sync/apps.py" in written.stdout
    generated = (copy / "quern/_sync/apps.py").read_text()
    assert "    def versions(self, name: str) -> builtins.list[App]:\n" in generated
    assert 'answer = self._connection.request("GET", f"/v1/apps/{name}/versions")' in generated
    assert unasync(copy, "--check").returncode == 0


def test_check_fails_on_a_generated_module_whose_source_is_gone(copy: Path) -> None:
    (copy / "quern/_async/webhooks.py").unlink()
    checked = unasync(copy, "--check")
    assert checked.returncode == 1 and "quern/_sync/webhooks.py has no source" in checked.stderr


def test_generated_modules_say_so_and_name_their_source() -> None:
    for generated in sorted((PROJECT / "quern/_sync").glob("*.py")):
        if generated.name != "__init__.py":
            first = generated.read_text().splitlines()[0]
            assert first.startswith(f"# Generated from quern/_async/{generated.name} by scripts/unasync.py"), first
            assert (PROJECT / "quern/_async" / generated.name).exists()
