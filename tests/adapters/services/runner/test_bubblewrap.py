"""The local driver's bubblewrap sandbox, run for real: what an app sees, how it is stopped, what the runner refuses."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from devstack.processes import SANDBOX_PACKAGES, ensure_commands
from services.runner.bubblewrap import Bubblewrap, kill_sandboxes, outermost, sandboxes_naming
from services.runner.drivers import LocalDriver, offered
from services.runner.processes import Exit, run_app
from services.runner.sandbox import Sandbox
from shared.apps import AppSpec
from shared.settings import ConfigError, RunnerSettings
from tests.helpers.clients import processes_mentioning
from tests.helpers.records import make_spec
from tests.helpers.runners import stand_in_runner

NOBODY = (65534, 65534)
NO_PARAMETERS = {"type": "object", "additionalProperties": False}
APPS = Path(__file__).resolve().parents[4] / "apps"

SEEN = """
import json, os, socket, sys
def tried(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
def connect():
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
def write_input():
    open(os.environ["INPUT"], "a").write("changed")
import numpy  # {python}: the runner's venv and the Python it is made from are there
json.dump({
    "uid": os.getuid(), "cwd": os.getcwd(), "env": sorted(os.environ),
    "neighbour": tried(lambda: os.listdir(sys.argv[1])),
    "work_dir": os.listdir(os.path.dirname(os.getcwd().rstrip("/").rsplit("/", 1)[0])),
    "connect": tried(connect), "write_input": tried(write_input),
    "input": open(os.environ["INPUT"]).read(),
    "write_tmp": tried(lambda: open("/tmp/x", "w").write("x")),
    "write_usr": tried(lambda: open("/usr/x", "w")),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "hostname": socket.gethostname(),
}, open("seen.json", "w"))
"""


@pytest.fixture(scope="module", autouse=True)
def as_root() -> None:
    """The sandbox tests run a root runner's way (bwrap as root, setpriv to nobody): CI runs them, as root."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the sandbox tests must run as root")
        pytest.skip("the sandbox tests run as root")
    ensure_commands(SANDBOX_PACKAGES)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    directory.mkdir(mode=0o711)
    return directory


@pytest.fixture
def bwrap(work: Path) -> Bubblewrap:
    return Bubblewrap.find(user=NOBODY, apps_dir=APPS, work_dir=work)


def spec_of(**overrides: Any) -> AppSpec:
    return make_spec(command=["/bin/true"], parameters=NO_PARAMETERS, inputs={}, **overrides)


def box_in(work: Path, job_id: str = "01JOB") -> Sandbox:
    box = Sandbox(work, job_id)
    box.create()
    return box


def run(argv: list[str], box: Sandbox, driver: LocalDriver, spec: AppSpec, *, stop_after: float | None = None) -> Exit:
    async def main() -> Exit:
        stop = asyncio.Event()
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, stop.set)
        return await run_app(argv, sandbox=box, spec=spec, timeout=30, stop=stop, driver=driver)

    if driver.owner is not None:
        box.hand_over(*driver.owner)
    return asyncio.run(main())


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections, as the servers do."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_an_app_sees_its_job_alone_as_nobody_without_network_or_the_runners_environment(
    work: Path, bwrap: Bubblewrap, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://the-runners-secret")
    neighbour = box_in(work, "01OTHER")
    (neighbour.run / "result.txt").write_text("another tenant's")
    box = box_in(work)
    staged = box.input_path("data", "in.txt")
    staged.write_text("staged")
    spec = spec_of(env={"INPUT": str(staged)})
    argv = [sys.executable, "-c", SEEN, str(neighbour.root), str(listener)]
    ended = run(argv, box, LocalDriver(bwrap=bwrap), spec)
    assert ended.code == 0, box.stderr_tail()
    seen = json.loads((box.run / "seen.json").read_text())
    assert seen["uid"] == 65534 and seen["cwd"] == str(box.run) and seen["hostname"] == "quern"
    expected = ["HOME", "INPUT", "LANG", "LC_ALL", "PATH", "QUERN_CHECKPOINT_DIR", "QUERN_PROGRESS_FILE", "TMPDIR"]
    assert seen["env"] == expected
    assert seen["neighbour"] == "FileNotFoundError"
    assert seen["work_dir"] == ["01JOB"]
    assert seen["connect"] != "ok"
    assert seen["write_input"] != "ok" and seen["input"] == "staged"
    assert (seen["write_tmp"], seen["write_usr"]) == ("ok", "OSError")
    assert len(seen["processes"]) <= 3, seen["processes"]  # the sandbox's init, env/setpriv's heir: the app
    assert (box.run / "seen.json").stat().st_uid == 65534


def test_an_app_that_asks_for_the_network_has_it(work: Path, bwrap: Bubblewrap, listener: int) -> None:
    box = box_in(work)
    script = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()"
    ended = run([sys.executable, "-c", script, str(listener)], box, LocalDriver(bwrap=bwrap), spec_of(network=True))
    assert ended.code == 0, box.stderr_tail()


def test_a_stopped_app_gets_sigterm_and_its_daemon_dies_with_it(work: Path, bwrap: Bubblewrap) -> None:
    marker = f"quern-daemon-{uuid.uuid4().hex}"
    script = (
        f"setsid sh -c 'sleep 300; : {marker}' & "
        'trap "echo terminated > $TMPDIR/term; exit 3" TERM; echo up; while true; do sleep 0.1; done'
    )
    box = box_in(work)
    started = time.monotonic()
    ended = run(["/bin/sh", "-c", script], box, LocalDriver(bwrap=bwrap), spec_of(), stop_after=1.0)
    assert ended.stopped and time.monotonic() - started < 5  # it ended on SIGTERM, not after the grace's SIGKILL
    assert (box.tmp / "term").read_text() == "terminated\n"
    assert not processes_mentioning(marker)


def test_the_sandbox_dies_with_a_runner_killed_outright(work: Path, bwrap: Bubblewrap) -> None:
    marker = f"quern-daemon-{uuid.uuid4().hex}"
    box = box_in(work)
    box.hand_over(*NOBODY)
    argv = ["/bin/sh", "-c", f"setsid sh -c 'sleep 300; : {marker}' & sleep 300"]
    stand_in = stand_in_runner(LocalDriver(bwrap=bwrap), argv, sandbox=box, spec=spec_of())
    try:
        deadline = time.monotonic() + 10
        while not processes_mentioning(marker):
            assert time.monotonic() < deadline, "the app never started"
            time.sleep(0.05)
    finally:
        stand_in.kill()
        stand_in.wait()
    # A sandbox that outlives its runner sleeps for minutes: the deadline is generous for a loaded machine
    # (5 s was missed by 0.02 s there), never for a leak.
    deadline = time.monotonic() + 15
    while processes_mentioning(marker):
        assert time.monotonic() < deadline, "the sandbox outlived the runner"
        time.sleep(0.05)


def test_a_sandbox_left_unowned_is_found_and_killed(work: Path, bwrap: Bubblewrap) -> None:
    box = box_in(work, "01LEFTOVER")
    box.hand_over(*NOBODY)
    command = bwrap.command(["/bin/sleep", "300"], sandbox=box, env={"PATH": "/usr/bin:/bin"}, network=False)
    leftover = subprocess.Popen(command, start_new_session=True)  # as if its runner had died while bwrap started
    try:
        deadline = time.monotonic() + 10
        while not processes_mentioning("/bin/sleep"):
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        assert kill_sandboxes(f"{work}/other-job/") == []  # only the sandboxes named are killed
        assert len(kill_sandboxes("/01LEFTOVER/run")) >= 1  # bwrap and, with a PID namespace, its init
        assert leftover.wait(timeout=10) == -9
    finally:
        leftover.kill()


def test_a_leftover_sandbox_is_killed_before_a_run_and_gone_once_the_clean_up_returns(
    work: Path, bwrap: Bubblewrap
) -> None:
    box = box_in(work, "01LEFTOVER")
    box.hand_over(*NOBODY)
    marker = f"quern-leftover-{uuid.uuid4().hex}"
    command = bwrap.command(
        ["/bin/sh", "-c", "sleep 300", marker], sandbox=box, env={"PATH": "/usr/bin:/bin"}, network=False
    )
    leftover = subprocess.Popen(command, start_new_session=True)  # as if its runner had died while bwrap started
    try:
        deadline = time.monotonic() + 10
        while not processes_mentioning(marker):
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        with capture_logs() as logs:
            asyncio.run(LocalDriver(bwrap=bwrap).clean_up("01LEFTOVER"))
        assert sandboxes_naming("/01LEFTOVER/run") == []  # killed, and waited for: the run may start
        assert [entry["event"] for entry in logs] == ["leftover_sandboxes_killed"]
        assert leftover.wait(timeout=10) == -9
    finally:
        leftover.kill()
        leftover.wait()


def test_before_a_jobs_first_run_no_sandbox_is_looked_for(work: Path, bwrap: Bubblewrap) -> None:
    box = box_in(work, "01LEFTOVER")
    box.hand_over(*NOBODY)
    command = bwrap.command(["/bin/sleep", "300"], sandbox=box, env={"PATH": "/usr/bin:/bin"}, network=False)
    sandbox = subprocess.Popen(command, start_new_session=True)  # one a fresh job cannot have: it is not looked for
    try:
        deadline = time.monotonic() + 10
        while not sandboxes_naming("/01LEFTOVER/run"):
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        asyncio.run(LocalDriver(bwrap=bwrap).clean_up("01LEFTOVER", fresh=True))
        assert sandbox.poll() is None
    finally:
        kill_sandboxes(str(box.run))  # bwrap and its namespace's init: killing bwrap alone leaves the init
        sandbox.wait()


def test_a_sandbox_is_found_by_a_word_past_the_first_read_of_its_command_line(work: Path, bwrap: Bubblewrap) -> None:
    box = box_in(work)
    box.hand_over(*NOBODY)
    marker = f"quern-far-{uuid.uuid4().hex}"
    env = {"PATH": "/usr/bin:/bin", "FILLER": "x" * 100_000}  # before the app's argv: the marker lies past 64 KiB
    command = bwrap.command(["/bin/sh", "-c", "sleep 300", marker], sandbox=box, env=env, network=False)
    sandbox = subprocess.Popen(command, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not processes_mentioning(marker):
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        assert sandbox.pid in sandboxes_naming(marker)
    finally:
        kill_sandboxes(marker)  # bwrap and its namespace's init: killing bwrap alone leaves the init
        sandbox.wait()


def test_runs_leave_no_descriptor_open_in_the_runner(work: Path, bwrap: Bubblewrap) -> None:
    driver = LocalDriver(bwrap=bwrap)
    run(["/bin/true"], box_in(work, "01FIRST"), driver, spec_of())  # the first run opens what the runner keeps
    before = set(os.listdir("/proc/self/fd"))
    for job_id in ("01SECOND", "01THIRD"):
        assert run(["/bin/true"], box_in(work, job_id), driver, spec_of()).code == 0
    assert set(os.listdir("/proc/self/fd")) == before  # bwrap's --info-fd pipe is closed at each end


def test_a_runner_without_bwrap_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="bwrap is not on PATH"):
        offered(settings_for(tmp_path / "work"))


def test_a_runner_whose_sandbox_does_not_work_refuses_to_start(work: Path, bwrap: Bubblewrap) -> None:
    broken = replace(bwrap, bwrap="/usr/bin/false")
    with pytest.raises(ConfigError, match="LOCAL_SANDBOX: bubblewrap cannot make the app sandbox here"):
        broken.probe(work)
    assert list(work.iterdir()) == []  # the probe's directory is gone


def test_a_work_dir_inside_what_apps_see_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WORK_DIR"):
        Bubblewrap.find(user=NOBODY, apps_dir=APPS, work_dir=Path(sys.prefix) / "work")


def test_the_sandbox_can_be_turned_off_only_loudly(tmp_path: Path) -> None:
    with capture_logs() as logs:
        driver = offered(settings_for(tmp_path / "work", local_sandbox="none"))["local"]
    assert isinstance(driver, LocalDriver) and driver.bwrap is None
    assert [entry["log_level"] for entry in logs if entry["event"] == "local_sandbox_disabled"] == ["warning"]


def test_only_the_outermost_trees_are_mounted() -> None:
    found = outermost([Path("/opt/venv"), Path("/opt/venv/lib"), Path("/usr/local"), Path("/"), Path("/srv/py")])
    assert found == [Path("/opt/venv"), Path("/srv/py"), Path("/usr/local")]
    assert outermost([Path("/usr/local"), Path("/opt/py")], covered=[Path("/usr")]) == [Path("/opt/py")]


def settings_for(work_dir: Path, **overrides: Any) -> RunnerSettings:
    base: dict[str, Any] = {"rabbitmq_url": "amqp://h", "mongo_url": "mongodb://h", "s3_bucket": "quern"}
    return RunnerSettings(**base, work_dir=work_dir, apps_dir=APPS, **overrides)
