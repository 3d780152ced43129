"""A job's directory: staging inside its slots, outputs collected and read without following links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.runner.sandbox import Sandbox
from shared.errors import Invalid

NOBODY = 65534


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path / "work", "job1")
    box.create()
    return box


def test_output_globs_do_not_follow_linked_directories(tmp_path: Path, sandbox: Sandbox) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.dat").write_text("host data")
    (sandbox.run / "out").mkdir()
    os.symlink(outside, sandbox.run / "out" / "link")
    (sandbox.run / "out" / "mine.dat").write_text("mine")
    assert [rel for rel, _ in sandbox.collect(["out/**/*.dat", "**/*.dat"], max_bytes=100)] == ["out/mine.dat"]


def test_collect_ignores_links_and_files_outside_the_globs(tmp_path: Path, sandbox: Sandbox) -> None:
    (sandbox.run / "a.txt").write_text("a")
    (sandbox.run / "out" / "deep").mkdir(parents=True)
    (sandbox.run / "out" / "deep" / "b.dat").write_text("b")
    (sandbox.run / "c.log").write_text("not an output")
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    os.symlink(secret, sandbox.run / "leak.txt")
    found = sandbox.collect(["*.txt", "out/**/*.dat"], max_bytes=100)
    assert [relative for relative, _ in found] == ["a.txt", "out/deep/b.dat"]


def test_collect_refuses_outputs_over_the_cap(tmp_path: Path, sandbox: Sandbox) -> None:
    (sandbox.run / "big.txt").write_bytes(b"x" * 1000)
    with pytest.raises(Invalid, match="exceed"):
        sandbox.collect(["*.txt"], max_bytes=999)


def test_the_runner_makes_itself_non_dumpable() -> None:
    script = (
        "import ctypes; from services.runner.__main__ import protect_credentials\n"
        "assert protect_credentials()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0"


def test_dataset_members_are_staged_in_their_layout_under_the_slot(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, "job1")
    sandbox.create()
    target = sandbox.member_path("model", "control/data/flows.csv")
    assert target == (sandbox.inputs / "model" / "control" / "data" / "flows.csv").resolve()
    assert target.parent.is_dir()
    assert sandbox.input_dir("model") == sandbox.inputs / "model"


@pytest.mark.parametrize("member", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "."])
def test_a_member_path_that_leaves_its_slot_is_refused(tmp_path: Path, member: str) -> None:
    sandbox = Sandbox(tmp_path, "job1")
    sandbox.create()
    with pytest.raises(Invalid, match="outside its input directory"):
        sandbox.member_path("model", member)


def test_an_output_swapped_for_a_link_after_collect_is_not_read(tmp_path: Path, sandbox: Sandbox) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    (sandbox.run / "out").mkdir()
    (sandbox.run / "out" / "result.txt").write_text("mine")
    (sandbox.run / "top.txt").write_text("mine too")
    found = sandbox.collect(["**/*.txt"], max_bytes=100)
    assert [relative for relative, _ in found] == ["out/result.txt", "top.txt"]
    with sandbox.open_output("out/result.txt") as handle:
        assert handle.read() == b"mine"
    # What a process the app left behind could do between collect and upload:
    (sandbox.run / "top.txt").unlink()
    os.symlink(secret, sandbox.run / "top.txt")
    with pytest.raises(Invalid, match=r"output top\.txt changed after the run"):
        sandbox.open_output("top.txt")
    (sandbox.run / "out").rename(sandbox.run / "elsewhere")
    os.symlink(tmp_path, sandbox.run / "out")
    (tmp_path / "result.txt").write_text("host file")
    with pytest.raises(Invalid, match=r"output out/result\.txt changed after the run"):
        sandbox.open_output("out/result.txt")


def test_an_output_swapped_for_a_fifo_is_refused_without_blocking(sandbox: Sandbox) -> None:
    os.mkfifo(sandbox.run / "pipe.txt")
    with pytest.raises(Invalid, match="no longer a regular file"):
        sandbox.open_output("pipe.txt")


def locked_tree(sandbox: Sandbox) -> None:
    """What a hostile app leaves: closed (chmod 000) directories and files, odd names, depth Python cannot recurse."""
    deep = sandbox.run / "trap" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "file").write_text("locked")
    for name in (b"new\nline", b"\xff\xfe", b"-rf", b" "):
        (sandbox.run / "trap").joinpath(os.fsdecode(name)).write_text("odd")
    fd = os.open(sandbox.tmp, os.O_RDONLY)
    try:
        for _ in range(1200):  # deeper than the recursion limit; relative steps, as a path this long cannot be named
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    for path in (deep / "file", deep, deep.parent, deep.parent.parent, sandbox.run):
        path.chmod(0)


def test_a_tree_the_app_locked_is_removed(sandbox: Sandbox) -> None:
    locked_tree(sandbox)
    sandbox.remove()
    assert not sandbox.root.exists()


def test_a_runner_that_is_not_root_removes_the_tree_its_app_locked(open_dir: Path) -> None:
    """The apps of a runner of another user run as that user, so what they lock is the runner's own to open again."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the removal test takes another user's identity and must run as root")
        pytest.skip("taking another user's identity needs root")
    sandbox = Sandbox(open_dir / "work", "job1")
    sandbox.create()
    for directory, names, files in os.walk(open_dir / "work"):
        for name in [directory, *(os.path.join(directory, n) for n in [*names, *files])]:
            os.chown(name, NOBODY, NOBODY)
    # The runner's user from here on: root's effective identity, the way back kept in the saved uid.
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        locked_tree(sandbox)
        sandbox.remove()
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert not sandbox.root.exists()


def test_disk_use_counts_what_the_app_wrote_and_nothing_it_links_to(tmp_path: Path, sandbox: Sandbox) -> None:
    (sandbox.input_path("data", "big.bin")).write_bytes(os.urandom(2**20))  # staged by quern: not the app's
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(4 * 2**20))
    os.symlink(outside, sandbox.run / "link")
    empty = sandbox.disk_use()
    (sandbox.run / "out.bin").write_bytes(os.urandom(2**20))
    (sandbox.tmp / "closed").mkdir()
    (sandbox.tmp / "closed" / "scratch.bin").write_bytes(os.urandom(2**20))
    (sandbox.tmp / "closed").chmod(0)
    grown = sandbox.disk_use() - empty
    assert 2 * 2**20 <= grown < 2 * 2**20 + 64 * 1024


def test_a_flood_of_empty_files_counts(sandbox: Sandbox) -> None:
    before = sandbox.disk_use()
    for n in range(1000):
        (sandbox.run / f"{n}").touch()
    assert sandbox.disk_use() - before >= 1000 * 4096
