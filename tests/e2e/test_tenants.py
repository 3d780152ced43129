"""Two tenants on one runner: a hostile app beside another user's job, under bubblewrap and under podman.

One stack whose runner (``RUNNER_CONCURRENCY=2``) offers the local driver, sandboxed with
bubblewrap, and the container driver through real podman with the test image built offline
(tests/helpers/containers.py). User A's ``tenant`` job copies its input and keeps running;
meanwhile user B's ``hostile`` app (tests/fixture_apps/hostile/hostile.sh) tries to reach A's
job directory, the runner's environment and processes, the servers, to leave a daemon, to kill
the runner and to leave a tree the runner cannot delete, and writes down what happened. The
same script run unconfined on the host sees all of it, so every "failed" below is the sandbox's doing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import (
    add_user,
    archive_members,
    client_for,
    eventually,
    processes_mentioning,
    upload,
    wait_for,
)
from tests.helpers.containers import build_image, ensure_podman, podman_command
from tests.helpers.stacks import FIXTURE_APPS, own_stack, stop_all

MAX_JOB_DISK_MB = 40
SCRIPTS = {"tenant.sh": FIXTURE_APPS / "tenant/tenant.sh", "hostile.sh": FIXTURE_APPS / "hostile/hostile.sh"}
# What the runner has in its environment that no app may see.
SECRETS = {"MONGO_URL", "RABBITMQ_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "AUTH_SECRET", "ADMIN_PASSWORD"}


@dataclass
class Tenants:
    """The stack, its WORK_DIR, the runner's pid, and the apps of each driver by role."""

    stack: Stack
    work: Path
    runner: int
    apps: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def tenants(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    ensure_podman()
    image = build_image(SCRIPTS)
    state = tmp_path_factory.mktemp("tenants")
    work = Path(tempfile.mkdtemp(prefix="quern-tenants-")) / "work"
    stack = own_stack(
        servers,
        state,
        "tenants",
        RUNNER_DRIVERS="local,docker",
        DOCKER_COMMAND=str(podman_command(state, image)),
        WORK_DIR=str(work),
        MAX_JOB_DISK_MB=str(MAX_JOB_DISK_MB),
        RUNNER_CONCURRENCY="2",
    )
    try:
        stack.start_services()
        runner = stack.services()[1].pid()
        assert runner is not None
        admin = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
        try:
            containers = {role: register_container_app(admin, role, image) for role in ("tenant", "hostile")}
        finally:
            admin.close()
        yield Tenants(stack, work, runner, {"local": {"tenant": "tenant", "hostile": "hostile"}, "podman": containers})
    finally:
        stop_all(stack.services())
        shutil.rmtree(work.parent, ignore_errors=True)


def register_container_app(admin: httpx.Client, role: str, image: str) -> str:
    """The fixture app ``role`` as a container app of the test image, its script under /app."""
    definition: dict[str, Any] = admin.get(f"/v1/apps/{role}").json()
    name = f"{role}-box-{uuid.uuid4().hex[:6]}"
    command = ["/bin/sh", f"/app/{role}.sh", *definition["command"][3:]]
    fields = {key: definition[key] for key in ("description", "parameters", "inputs", "outputs", "timeout", "limits")}
    body = {**fields, "name": name, "version": "1.0.0", "command": command, "driver": "docker", "image": image}
    answer = admin.post("/v1/apps", json=body)
    assert answer.status_code == 201, answer.text
    return name


@pytest.fixture
def users(tenants: Tenants) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    stack = tenants.stack
    admin = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    a, b = (client_for(stack.gateway_url, *add_user(admin)) for _ in range(2))
    try:
        yield a, b
    finally:
        for client in (admin, a, b):
            client.close()


def observations(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def servers_of(stack: Stack) -> list[str]:
    ports = stack.ports
    return [f"127.0.0.1:{port}" for port in (ports.mongo, ports.rabbitmq, ports.s3, ports.gateway)]


def state_of(user: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = user.get(f"/v1/jobs/{job_id}").json()
    return job


@pytest.mark.parametrize("driver", ["local", "podman"])
def test_a_hostile_tenant_learns_nothing_of_the_other_job_and_leaves_nothing_behind(
    tenants: Tenants, users: tuple[httpx.Client, httpx.Client], driver: str
) -> None:
    a, b = users
    apps = tenants.apps[driver]
    data = secrets.token_bytes(64 * 1024)
    staged = upload(a, "private.bin", data)
    victim = a.post(
        "/v1/jobs", json={"app": apps["tenant"], "params": {"seconds": 20}, "inputs": {"data": staged["id"]}}
    ).json()
    eventually(
        lambda: (state_of(a, victim["id"]).get("progress") or {}).get("step") == "copied", "A's app never copied"
    )

    marker = f"quern-daemon-{uuid.uuid4().hex}"
    params = {
        "victim": str(tenants.work / victim["id"]),
        "runner": tenants.runner,
        "servers": " ".join([*servers_of(tenants.stack), "169.254.169.254:80"]),
        "marker": marker,
    }
    hostile = b.post("/v1/jobs", json={"app": apps["hostile"], "params": params}).json()
    ended = wait_for(b, hostile["id"], timeout=60)
    assert ended["state"] == "SUCCEEDED", ended
    assert state_of(a, victim["id"])["state"] == "RUNNING"  # both ran at once
    seen = observations(archive_members(b, hostile["id"])["outputs/observations.txt"].decode(errors="replace"))

    assert seen["trap_made"] == seen["daemon_started"] == "yes", seen
    for attempt in ("list_victim", "read_victim_inputs", "read_victim_outputs", "write_victim"):
        assert seen[attempt] == "failed", (attempt, seen)
    assert victim["id"] not in seen["work_dir"]
    for attempt in ("read_runner_environ", "read_runner_cmdline", "read_shadow", "write_usr", "write_root"):
        assert seen[attempt] == "failed", (attempt, seen)
    for server in servers_of(tenants.stack):
        assert seen[f"connect_{server}"] == "failed", (server, seen)
    assert seen["kill_runner"] == seen["kill_runner_hard"] == "failed"
    assert not set(seen["env"].split()) & SECRETS, seen["env"]
    processes = [line for line in seen["processes"].split("|") if line.strip()]
    assert len(processes) < 10, processes  # its own, and its sandbox's init: nothing of the host
    assert not [line for line in processes if "services." in line or "tenant.sh" in line], processes

    runner = tenants.stack.services()[1]
    assert runner.running() and runner.pid() == tenants.runner
    eventually(lambda: not processes_mentioning(marker), "B's daemon outlived its job", timeout=10)
    eventually(lambda: not (tenants.work / hostile["id"]).exists(), "B's directory was not removed", timeout=10)

    done = wait_for(a, victim["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", done
    outputs = archive_members(a, victim["id"])
    assert outputs["outputs/copy.bin"] == data
    assert outputs["outputs/note.txt"] == b"private to this tenant\n"
    eventually(lambda: not any(tenants.work.iterdir()), "a job directory was left in WORK_DIR", timeout=10)


def test_the_hostile_app_sees_everything_when_unconfined(tenants: Tenants, tmp_path: Path) -> None:
    """The control: on the host the same script reads, connects and kills, so its "failed" above means something."""
    victim = tmp_path / "victim"
    (victim / "run").mkdir(parents=True)
    (victim / "inputs" / "data").mkdir(parents=True)
    (victim / "run" / "out.txt").write_text("a tenant's output")
    (victim / "inputs" / "data" / "in.txt").write_text("a tenant's input")
    stand_in = subprocess.Popen(["sleep", "60"])  # takes the runner's place: the script will kill it
    here = tmp_path / "here"
    here.mkdir()
    marker = f"quern-daemon-{uuid.uuid4().hex}"
    servers = " ".join(servers_of(tenants.stack))
    try:
        subprocess.run(
            ["busybox", "sh", str(SCRIPTS["hostile.sh"]), str(victim), str(stand_in.pid), servers, marker],
            cwd=here,
            env={"PATH": os.environ["PATH"], "TMPDIR": str(here), "MONGO_URL": "the runner's"},
            check=True,
            timeout=60,
        )
        seen = observations((here / "observations.txt").read_text(errors="replace"))
        for attempt in ("list_victim", "read_victim_inputs", "read_victim_outputs", "write_victim"):
            assert seen[attempt] == "ok", (attempt, seen)
        assert seen["read_runner_environ"] == seen["kill_runner"] == "ok"
        for server in servers_of(tenants.stack):
            assert seen[f"connect_{server}"] == "ok", (server, seen)
        assert "MONGO_URL" in seen["env"].split()
        assert processes_mentioning(marker)
    finally:
        stand_in.kill()
        stand_in.wait()
        for pid in processes_mentioning(marker):
            os.kill(pid, 9)


@pytest.mark.parametrize("driver", ["local", "podman"])
def test_a_job_filling_its_directory_is_stopped_and_failed(
    tenants: Tenants, users: tuple[httpx.Client, httpx.Client], driver: str
) -> None:
    a, _ = users
    job = a.post(
        "/v1/jobs",
        json={"app": tenants.apps[driver]["tenant"], "params": {"seconds": 60}, "inputs": {"data": filler(a)["id"]}},
    ).json()
    done = wait_for(a, job["id"], timeout=60)
    assert done["state"] == "FAILED", done
    assert done["error"]["reason"] == f"used more than {MAX_JOB_DISK_MB} MB of disk in its directory"
    eventually(lambda: not (tenants.work / job["id"]).exists(), "its directory was not removed", timeout=10)


def filler(user: httpx.Client) -> dict[str, Any]:
    """An input bigger than the disk limit: the tenant app copies it into its run directory, then waits."""
    return upload(user, "big.bin", b"\0" * ((MAX_JOB_DISK_MB + 10) * 2**20))
