"""Execution drivers: the exact command lines they build, and apps run as another user."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.runner.containers import DockerDriver
from services.runner.drivers import LocalDriver, offered, own_work_dir
from services.runner.processes import run_app
from services.runner.sandbox import Sandbox
from services.runner.users import RunAs
from shared.apps import AppSpec
from shared.settings import ConfigError, RunnerSettings
from tests.helpers.clients import eventually, processes_mentioning
from tests.helpers.runners import stand_in_runner

# A user of these tests alone, not nobody: between runs the unconfined local driver SIGKILLs every process
# of its run-as user, which must not hit the apps other tests run at the same time (as nobody).
APP_USER = RunAs("quern-test-app", 64999, 64999)


def spec_of(**overrides: Any) -> AppSpec:
    definition: dict[str, Any] = {
        "name": "probe",
        "version": "1",
        "description": "test app",
        "command": ["/usr/bin/python3", "-c", "print(1)", "{params.label}"],
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"label": {"type": "string", "default": "x"}},
        },
        "outputs": ["*.txt"],
        "timeout": {"default": 10, "max": 10},
    }
    return AppSpec.model_validate(definition | overrides)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path / "work", "01JOB")
    box.create()
    return box


@pytest.fixture
def root() -> None:
    """Switching users needs root: CI runs as root, so there a missing root fails instead of skipping."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the run-as tests switch users and must run as root")
        pytest.skip("switching users needs root")


LIMITS = """
import json, os, resource, signal, sys
names = ("AS", "CPU", "FSIZE", "NOFILE", "NPROC", "CORE")
print(json.dumps({
    "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ),
    "limits": {name: resource.getrlimit(getattr(resource, f"RLIMIT_{name}")) for name in names},
    "term": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
}))
"""


def test_the_local_driver_starts_the_argv_whole_in_run_with_the_apps_limits_and_no_core_dumps(
    sandbox: Sandbox,
) -> None:
    limits = {"memory_mb": 512, "cpu_seconds": 30, "file_size_mb": 8, "open_files": 64, "processes": 64}
    spec = spec_of(limits=limits, env={"DECLARED": "yes"})
    argv = ["/usr/bin/python3", "-c", LIMITS, "a b", "x=y", "-i", "$HOME", "{params.label}", ""]
    exit = asyncio.run(
        run_app(argv, sandbox=sandbox, spec=spec, timeout=20, stop=asyncio.Event(), driver=LocalDriver())
    )
    assert exit.code == 0, sandbox.stderr_tail()
    seen = json.loads(sandbox.stdout.read_text())
    assert seen["argv"] == argv[3:]
    assert seen["cwd"] == str(sandbox.run)
    assert seen["env"] == sandbox.environment({"DECLARED": "yes"})  # exactly the app's
    assert seen["limits"] == {
        "AS": [512 * 2**20] * 2,
        "CPU": [30, 30],
        "FSIZE": [8 * 2**20] * 2,
        "NOFILE": [64, 64],
        "NPROC": [64, 64],
        "CORE": [0, 0],
    }
    assert seen["term"]  # the app may be stopped by SIGTERM


def test_an_app_whose_runner_died_before_it_could_follow_it_does_not_start(sandbox: Sandbox) -> None:
    marker = sandbox.run / "ran"
    driver, spec = LocalDriver(), spec_of()
    command = driver.command(["/usr/bin/touch", str(marker)], sandbox=sandbox, spec=spec)  # this process's
    # Started by another process, as an app whose runner died at once would find itself adopted by another.
    adopter = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", adopter, *command], env=driver.environment(sandbox, spec), cwd=sandbox.root, check=False
    )
    assert done.returncode == 137 and not marker.exists()


def engine_argv(command: list[str], executable: str) -> list[str]:
    """The container engine's command line within the runner's command."""
    return command[command.index(executable) :]


def test_the_docker_command_line_mounts_the_job_limits_the_container_and_keeps_argv_whole(sandbox: Sandbox) -> None:
    spec = spec_of(
        driver="docker",
        image="ghcr.io/example/model:2.1",
        env={"OMP_NUM_THREADS": "2"},
        limits={"memory_mb": 512, "cpu_seconds": 60, "file_size_mb": 8, "open_files": 256, "processes": 32},
    )
    driver = DockerDriver("/opt/docker", run_as=APP_USER)
    command = driver.command(["/usr/bin/python3", "-c", "print(1)", "x; rm -rf /"], sandbox=sandbox, spec=spec)
    docker = engine_argv(command, "/opt/docker")
    r, run, tmp = sandbox.inputs, sandbox.run, sandbox.tmp
    assert docker == [
        "/opt/docker", "run", "--rm", "--name", "quern-01job", "--label", "quern.job=01JOB", "--init",
        "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only",
        "--user", "64999:64999", "--workdir", str(run),
        "--mount", f"type=bind,source={r},target={r},readonly",
        "--mount", f"type=bind,source={run},target={run}",
        "--mount", f"type=bind,source={tmp},target={tmp}",
        "--ulimit", "core=0", "--memory", "512m", "--memory-swap", "512m", "--ulimit", "cpu=60:60",
        "--ulimit", f"fsize={8 * 2**20}:{8 * 2**20}", "--ulimit", "nofile=256:256", "--ulimit", "nproc=32:32",
        "--pids-limit", "32",
        "--env", "LANG=C.UTF-8", "--env", "LC_ALL=C.UTF-8", "--env", f"HOME={run}", "--env", f"TMPDIR={tmp}",
        "--env", f"QUERN_PROGRESS_FILE={sandbox.progress_file}",
        "--env", f"QUERN_CHECKPOINT_DIR={sandbox.checkpoint}", "--env", "OMP_NUM_THREADS=2",
        "--entrypoint", "/usr/bin/python3", "ghcr.io/example/model:2.1", "-c", "print(1)", "x; rm -rf /",
    ]  # fmt: skip


def test_the_docker_driver_runs_containers_as_the_runner_without_a_run_as_user(sandbox: Sandbox) -> None:
    spec = spec_of(driver="docker", image="busybox", limits={"memory_mb": None, "file_size_mb": None})
    docker = engine_argv(DockerDriver().command(["/bin/true"], sandbox=sandbox, spec=spec), "docker")
    assert docker[docker.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert "--memory" not in docker
    assert not any(value.startswith("fsize=") for value in docker)
    # The CLI reads its config from the job root, which the app cannot write to.
    assert DockerDriver().environment(sandbox, spec) == {  # sbin too: podman's network helpers call iptables
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(sandbox.root),
    }


def test_the_container_engine_runs_as_the_runner_in_the_jobs_root_without_core_dumps(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    engine = tmp_path / "docker"
    engine.write_text('#!/bin/sh\n[ "$1" = run ] || exit 0\necho "$(id -u) $(ulimit -c) $(pwd)"\n')
    engine.chmod(0o755)
    spec = spec_of(driver="docker", image="busybox")
    driver = DockerDriver(str(engine), run_as=APP_USER)
    exit = asyncio.run(
        run_app(["/bin/true"], sandbox=sandbox, spec=spec, timeout=20, stop=asyncio.Event(), driver=driver)
    )
    assert exit.code == 0, sandbox.stderr_tail()
    assert sandbox.stdout.read_text() == f"{os.getuid()} 0 {sandbox.root}\n"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"driver": "docker"}, "driver docker needs an image"),
        ({"image": "busybox"}, "image is for container drivers"),
        ({"driver": "docker", "image": "--privileged"}, "image"),
        ({"driver": "docker", "image": "busybox", "command": ["{python}", "x.py"]}, "{python} names a path"),
        ({"driver": "docker", "image": "busybox", "command": ["{app_dir}/run"]}, "{app_dir} names a path"),
        ({"driver": "podman", "image": "busybox"}, "driver"),
        ({"limits": {"processes": 0}}, "processes"),
    ],
)
def test_definitions_that_cannot_run_under_their_driver_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        spec_of(**overrides)


def test_runner_drivers_must_be_known(monkeypatch: pytest.MonkeyPatch) -> None:
    base: dict[str, Any] = {"rabbitmq_url": "amqp://h", "mongo_url": "mongodb://h", "s3_bucket": "quern"}
    assert RunnerSettings(**base, runner_drivers="docker, local").drivers() == {"local", "docker"}
    with pytest.raises(ValidationError, match="unknown: podman"):
        RunnerSettings(**base, runner_drivers="local,podman")


def test_run_as_must_name_a_user_other_than_root() -> None:
    with pytest.raises(ConfigError, match="no user 'no-such-user-here'"):
        RunAs.resolve("no-such-user-here")
    with pytest.raises(ConfigError, match="must not run as root"):
        RunAs.resolve("0")


def test_a_work_dir_the_run_as_user_cannot_enter_is_refused(open_dir: Path) -> None:
    closed = open_dir / "closed"
    (closed / "work").mkdir(parents=True)
    closed.chmod(0o700)
    with pytest.raises(ConfigError, match=f"quern-test-app cannot enter {closed}"):
        APP_USER.check_reachable(closed / "work")
    closed.chmod(0o711)
    APP_USER.check_reachable(closed / "work")


PROBE = """
import json, os
secret = "unread"
try:
    open(os.environ["SECRET"]).read()
    secret = "read"
except PermissionError:
    pass
try:
    open("../logs/stdout.txt", "a")
    logs = "writable"
except PermissionError:
    logs = "closed"
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    fork = "allowed"
except OSError:
    fork = "refused"
open("who.json", "w").write(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "secret": secret, "logs": logs, "fork": fork,
    "input": open(os.environ["INPUT"]).read(),
}))
"""


def run_probe(directory: Path, limits: dict[str, Any]) -> dict[str, Any]:
    secret = directory / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    box = Sandbox(directory / "work", "01JOB")
    box.create()
    staged = box.input_path("data", "in.txt")
    staged.write_text("staged input")
    staged.chmod(0o600)  # as a strict umask would leave it
    spec = spec_of(env={"SECRET": str(secret), "INPUT": str(staged)}, limits=limits)
    box.hand_over(APP_USER.uid, APP_USER.gid)
    driver = LocalDriver(APP_USER)
    argv = ["/usr/bin/python3", "-c", PROBE]
    exit = asyncio.run(run_app(argv, sandbox=box, spec=spec, timeout=20, stop=asyncio.Event(), driver=driver))
    assert exit.code == 0, box.stderr_tail()
    assert (box.run / "who.json").stat().st_uid == APP_USER.uid
    report: dict[str, Any] = json.loads((box.run / "who.json").read_text())
    return report


@pytest.mark.usefixtures("root")
def test_an_app_runs_as_the_run_as_user_and_cannot_read_the_runners_files(open_dir: Path) -> None:
    report = run_probe(open_dir, {"processes": None})
    assert report == {
        "uid": 64999,
        "gid": 64999,
        "groups": [],
        "secret": "unread",
        "logs": "closed",
        "fork": "allowed",
        "input": "staged input",
    }


@pytest.mark.usefixtures("root")
def test_the_process_limit_applies_to_the_run_as_user(open_dir: Path) -> None:
    assert run_probe(open_dir, {"processes": 1})["fork"] == "refused"


@pytest.mark.usefixtures("root")
def test_handing_over_keeps_the_job_root_and_logs_the_runners(sandbox: Sandbox) -> None:
    sandbox.hand_over(APP_USER.uid, APP_USER.gid)
    assert stat.S_IMODE(sandbox.root.stat().st_mode) == 0o711
    assert sandbox.root.stat().st_uid == os.getuid()
    assert sandbox.logs.stat().st_uid == os.getuid()
    assert stat.S_IMODE(sandbox.logs.stat().st_mode) == 0o700
    assert sandbox.run.stat().st_uid == sandbox.tmp.stat().st_uid == APP_USER.uid


def test_offered_drivers_follow_the_settings(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "rabbitmq_url": "amqp://h",
        "mongo_url": "mongodb://h",
        "s3_bucket": "quern",
        "work_dir": tmp_path / "work",
    }
    engine = tmp_path / "docker"
    engine.write_text("#!/bin/sh\necho 'Version: 27.0'\n")  # answers the probe at start
    engine.chmod(0o755)
    assert sorted(offered(RunnerSettings(**base))) == ["local"]
    drivers = offered(RunnerSettings(**base, runner_drivers="local,docker", docker_command=str(engine)))
    assert isinstance(drivers["docker"], DockerDriver)
    assert drivers["docker"].executable == str(engine)
    with pytest.raises(ConfigError, match="DOCKER_COMMAND: /opt/no-docker version failed"):
        offered(RunnerSettings(**base, runner_drivers="docker", docker_command="/opt/no-docker"))


DETACH = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open("daemon.pid", "w").write(str(os.getpid()))
        time.sleep(120)
    os._exit(0)
time.sleep(0.5)
"""


@pytest.mark.usefixtures("root")
def test_a_process_the_app_detached_does_not_outlive_the_run(open_dir: Path) -> None:
    box = Sandbox(open_dir / "work", "01JOB")
    box.create()
    box.hand_over(APP_USER.uid, APP_USER.gid)
    spec = spec_of(limits={"processes": None})
    driver = LocalDriver(APP_USER)
    argv = ["/usr/bin/python3", "-c", DETACH]
    exit = asyncio.run(run_app(argv, sandbox=box, spec=spec, timeout=20, stop=asyncio.Event(), driver=driver))
    assert exit.code == 0, box.stderr_tail()
    daemon = int((box.run / "daemon.pid").read_text())
    assert not Path(f"/proc/{daemon}").exists() or "zombie" in Path(f"/proc/{daemon}/status").read_text()


@pytest.mark.usefixtures("root")
def test_an_app_run_as_another_user_dies_with_a_runner_killed_outright(open_dir: Path) -> None:
    # The parent-death signal does not survive a change of user: it must be set after it.
    box = Sandbox(open_dir / "work", "01JOB")
    box.create()
    box.hand_over(APP_USER.uid, APP_USER.gid)
    marker = f"quern-app-{uuid.uuid4().hex}"
    argv = ["/usr/bin/python3", "-c", f"import time; time.sleep(300)  # {marker}"]
    stand_in = stand_in_runner(LocalDriver(APP_USER), argv, sandbox=box, spec=spec_of(limits={"processes": None}))
    try:
        eventually(lambda: processes_mentioning(marker), "the app never started", every=0.05)
    finally:
        stand_in.kill()
        stand_in.wait()
    eventually(lambda: not processes_mentioning(marker), "the app outlived its runner", every=0.05, timeout=5)


def test_a_launcher_in_the_apps_directory_is_never_imported(sandbox: Sandbox) -> None:
    # The launcher runs as root before it becomes the app's user; the app's directory is the app's.
    planted = sandbox.run / "services" / "runner"
    planted.mkdir(parents=True)
    for package in (sandbox.run / "services", planted):
        (package / "__init__.py").write_text("")
    (planted / "launch.py").write_text("open('pwned', 'w').write('root')\n")
    (sandbox.run / "json.py").write_text("open('pwned', 'w').write('root')\n")
    argv = [sys.executable, "-c", "print('ran')"]
    spec = spec_of(env={"PYTHONPATH": str(sandbox.run)})
    exit = asyncio.run(
        run_app(argv, sandbox=sandbox, spec=spec, timeout=20, stop=asyncio.Event(), driver=LocalDriver())
    )
    assert exit.code == 0, sandbox.stderr_tail()
    assert sandbox.stdout.read_text() == "ran\n"
    assert not (sandbox.run / "pwned").exists()


def test_a_work_dir_others_may_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by it alone"):
        own_work_dir(shared)
    fresh = tmp_path / "fresh"
    own_work_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o711
