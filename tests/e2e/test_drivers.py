"""Execution drivers over the real stack: a docker app through the docker command line, and apps as another user.

No Docker engine runs on the test machines, so ``DOCKER_COMMAND`` points at
``tests/helpers/docker_stand_in.py``: it records each command line and runs the container's
entrypoint on the host with the container's user, directory and environment.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import archive_members, client_for, processes_mentioning, wait_for
from tests.helpers.stacks import own_stack, services_running

NOBODY = 65534
WHO = (
    "import json, os, sys; "
    "secret = 'unread'\n"
    "try:\n    open(os.environ['SECRET']).read(); secret = 'read'\n"
    "except OSError:\n    pass\n"
    "json.dump(dict(uid=os.getuid(), cwd=os.getcwd(), argv=sys.argv[1:], env=sorted(os.environ), secret=secret),"
    " open('who.json', 'w'))"
)


@pytest.fixture(scope="module")
def drivers_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A stack whose runner offers both drivers, runs apps as ``nobody`` and calls the docker stand-in."""
    state = tmp_path_factory.mktemp("drivers")
    work = Path(tempfile.mkdtemp(prefix="quern-drivers-"))  # pytest's tmp tree is private to root
    work.chmod(0o711)
    calls = state / "docker-calls.jsonl"
    docker = state / "docker"
    stand_in = Path(__file__).parent.parent / "helpers" / "docker_stand_in.py"
    docker.write_text(f'#!/bin/sh\nDOCKER_STAND_IN_LOG="{calls}" exec "{sys.executable}" "{stand_in}" "$@"\n')
    docker.chmod(0o755)
    stack = own_stack(
        servers,
        state,
        "own",
        RUNNER_DRIVERS="local,docker",
        DOCKER_COMMAND=str(docker),
        RUN_AS_USER="nobody",
        WORK_DIR=str(work / "work"),
    )
    with services_running(stack, leaving=work):
        yield stack, calls


@pytest.fixture
def api(drivers_stack: tuple[Stack, Path]) -> Iterator[httpx.Client]:
    stack, _ = drivers_stack
    client = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    try:
        yield client
    finally:
        client.close()


def register(api: httpx.Client, command: list[str], **extra: Any) -> str:
    name = f"drv-{uuid.uuid4().hex[:8]}"
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "A driver test app.",
        "command": command,
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"text": {"type": "string", "default": "-"}},
        },
        "inputs": {},
        "outputs": ["who.json"],
        "timeout": {"default": 60, "max": 60},
        "limits": {"memory_mb": 1024, "cpu_seconds": 60, "file_size_mb": 16, "open_files": 64, "processes": 64},
        **extra,
    }
    answer = api.post("/v1/apps", json=definition)
    assert answer.status_code == 201, answer.text
    return name


@pytest.fixture
def root_secret() -> Iterator[Path]:
    """A file only root may read, in a directory anyone may enter."""
    directory = Path(tempfile.mkdtemp(prefix="quern-secret-"))
    directory.chmod(0o711)
    secret = directory / "secret.txt"
    secret.write_text("the runner's")
    secret.chmod(0o600)
    try:
        yield secret
    finally:
        shutil.rmtree(directory)


def docker_calls(calls: Path, job_id: str) -> list[list[str]]:
    """The docker command lines the runner ran for this job, in order."""
    container = f"quern-{job_id.lower()}"
    lines = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return [args for args in lines if container in args]


def test_a_docker_app_runs_through_the_docker_command_line_as_the_run_as_user(
    drivers_stack: tuple[Stack, Path], api: httpx.Client, root_secret: Path
) -> None:
    _, calls = drivers_stack
    name = register(
        api,
        ["/usr/bin/python3", "-c", WHO, "{params.text}"],
        driver="docker",
        image="registry.example/science/model:3.2",
        env={"SECRET": str(root_secret)},
    )
    text = "a; b $(touch /tmp/pwned) ../../etc"
    job = wait_for(api, api.post("/v1/jobs", json={"app": name, "params": {"text": text}}).json()["id"])
    assert job["state"] == "SUCCEEDED", job
    who = json.loads(archive_members(api, job["id"])["outputs/who.json"])
    assert who["uid"] == NOBODY
    assert who["argv"] == [text]
    assert who["cwd"].endswith(f"/{job['id']}/run")
    assert who["secret"] == "unread"
    assert who["env"] == [
        "HOME",
        "LANG",
        "LC_ALL",
        "PATH",
        "QUERN_CHECKPOINT_DIR",
        "QUERN_PROGRESS_FILE",
        "SECRET",
        "TMPDIR",
    ]

    # A job's first run has no earlier attempt to leave a container: nothing is removed before, only after.
    started, after = docker_calls(calls, job["id"])
    assert after[:2] == ["rm", "--force"]
    assert started[:2] == ["run", "--rm"]
    for option in (["--network", "none"], ["--user", f"{NOBODY}:{NOBODY}"], ["--pids-limit", "64"]):
        assert started[started.index(option[0]) + 1] == option[1]
    image = started.index("registry.example/science/model:3.2")
    assert started[image - 2 : image] == ["--entrypoint", "/usr/bin/python3"]
    assert started[image + 1 :] == ["-c", WHO, text]


def test_a_docker_jobs_later_run_first_removes_what_an_earlier_one_may_have_left(
    drivers_stack: tuple[Stack, Path], api: httpx.Client
) -> None:
    _, calls = drivers_stack
    name = register(api, ["/usr/bin/python3", "-c", "raise SystemExit(3)"], driver="docker", image="busybox:1.36")
    retry = {"exit_codes": [3], "attempts": 2}
    job = wait_for(api, api.post("/v1/jobs", json={"app": name, "retry": retry}).json()["id"])
    assert (job["state"], job["attempt"]) == ("FAILED", 2)
    assert [args[0] for args in docker_calls(calls, job["id"])] == ["run", "rm", "rm", "run", "rm"]


def test_a_local_app_runs_as_the_run_as_user(api: httpx.Client, root_secret: Path) -> None:
    name = register(api, ["/usr/bin/python3", "-c", WHO, "{params.text}"], env={"SECRET": str(root_secret)})
    job = wait_for(api, api.post("/v1/jobs", json={"app": name, "params": {"text": "x"}}).json()["id"])
    assert job["state"] == "SUCCEEDED", job
    who = json.loads(archive_members(api, job["id"])["outputs/who.json"])
    assert (who["uid"], who["secret"], who["argv"]) == (NOBODY, "unread", ["x"])


def test_canceling_a_docker_job_stops_the_app_and_removes_its_container(
    drivers_stack: tuple[Stack, Path], api: httpx.Client
) -> None:
    _, calls = drivers_stack
    marker = uuid.uuid4().hex  # this test's app alone: another run of this test on the machine is not this one
    script = f"import time; print('##quern progress 10 \"waiting\"', flush=True); time.sleep(120)  # {marker}"
    name = register(api, ["/usr/bin/python3", "-c", script], driver="docker", image="busybox:1.36")
    job_id = api.post("/v1/jobs", json={"app": name}).json()["id"]
    deadline = time.monotonic() + 30
    while (api.get(f"/v1/jobs/{job_id}").json().get("progress") or {}).get("step") != "waiting":
        assert time.monotonic() < deadline, "the app never reported progress"
        time.sleep(0.1)
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_for(api, job_id, timeout=30)
    assert job["state"] == "CANCELED"
    assert [args[0] for args in docker_calls(calls, job_id)] == ["run", "rm"]  # a first run: no leftover to remove
    assert not processes_mentioning(marker)
