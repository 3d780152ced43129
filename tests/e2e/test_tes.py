"""GA4GH TES 1.1 through py-tes, the GA4GH Python client, unchanged, against the real stack and real podman.

One stack whose runner offers the container driver through podman, with the test image built
offline (tests/helpers/containers.py). Every development stack (devstack/stack.py) allows
``localhost/quern-*`` images and the ``quern-tes-*`` buckets of its own S3 stand-in, reached
with the ``TES_S3_*`` keys.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tes

from devstack.stack import Stack
from tests.helpers.clients import add_user, client_for, eventually, upload
from tests.helpers.containers import build_image, ensure_podman, podman_command
from tests.helpers.stacks import own_stack, services_running


@dataclass
class TesStack:
    """The stack, the image its tasks may run, and a bucket TES tasks may read and write."""

    stack: Stack
    image: str
    bucket: str


@pytest.fixture(scope="module")
def tes_stack(servers: Stack, s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TesStack]:
    ensure_podman()
    image = build_image({})
    state = tmp_path_factory.mktemp("tes")
    work = Path(tempfile.mkdtemp(prefix="quern-tes-")) / "work"
    bucket = f"quern-tes-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    stack = own_stack(
        servers,
        state,
        "tes",
        RUNNER_DRIVERS="local,docker",
        DOCKER_COMMAND=str(podman_command(state, image)),
        WORK_DIR=str(work),
        RUNNER_CONCURRENCY="2",
    )
    with services_running(stack, leaving=work.parent):
        yield TesStack(stack, image, bucket)


@dataclass
class User:
    """A user of the stack: the native API client, and py-tes logged in with the same bearer token."""

    api: httpx.Client
    tes: tes.HTTPClient


@pytest.fixture
def user(tes_stack: TesStack) -> Iterator[User]:
    stack = tes_stack.stack
    admin = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    api = client_for(stack.gateway_url, *add_user(admin))
    admin.close()
    token = api.headers["Authorization"].removeprefix("Bearer ")
    try:
        yield User(api, tes.HTTPClient(stack.gateway_url, token=token, timeout=30))
    finally:
        api.close()


def executor(image: str, *command: str, **fields: Any) -> tes.Executor:
    return tes.Executor(image=image, command=list(command), **fields)


def finished(client: tes.HTTPClient, task_id: str, timeout: float = 120) -> tes.Task:
    """The task in FULL view once it has ended (py-tes's own wait, then the full record)."""
    client.wait(task_id, timeout=timeout)
    return client.get_task(task_id, view="FULL")


def test_service_info_names_tes_1_1(user: User) -> None:
    info = user.tes.get_service_info()
    assert info.type == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert {"s3", "http", "https", "quern"} <= {scheme.split(":")[0] for scheme in info.storage}


def test_a_task_with_two_executors_sharing_a_volume_reads_every_kind_of_input_and_delivers_outputs(
    tes_stack: TesStack, user: User, s3: Any
) -> None:
    image, bucket = tes_stack.image, tes_stack.bucket
    s3.put_object(Bucket=bucket, Key="in/from-s3.txt", Body=b"from s3\n")
    file_id = upload(user.api, "mine.txt", b"from quern\n")["id"]
    task = tes.Task(
        name="two-steps",
        inputs=[
            tes.Input(path="/inputs/inline.txt", content="inline\n"),
            tes.Input(path="/inputs/s3.txt", url=f"s3://{bucket}/in/from-s3.txt"),
            tes.Input(path="/inputs/quern.txt", url=f"quern://files/{file_id}"),
        ],
        executors=[
            executor(image, "/bin/sh", "-c", "cat /inputs/inline.txt /inputs/s3.txt /inputs/quern.txt > /shared/all"),
            executor(image, "/bin/sh", "-c", "wc -l < /shared/all > /outputs/count; cat /shared/all"),
        ],
        volumes=["/shared"],
        outputs=[
            tes.Output(path="/outputs/count", url="quern://outputs/count.txt"),
            tes.Output(path="/shared/all", url=f"s3://{bucket}/out/all.txt"),
        ],
        tags={"study": "tes-e2e"},
    )
    task_id = user.tes.create_task(task)
    done = finished(user.tes, task_id)
    assert done.state == "COMPLETE"
    [log] = done.logs
    assert [entry.exit_code for entry in log.logs] == [0, 0]
    assert log.logs[1].stdout == "inline\nfrom s3\nfrom quern\n"
    delivered = {entry.url: entry for entry in log.outputs}
    assert int(delivered[f"s3://{bucket}/out/all.txt"].size_bytes) == len("inline\nfrom s3\nfrom quern\n")
    assert s3.get_object(Bucket=bucket, Key="out/all.txt")["Body"].read() == b"inline\nfrom s3\nfrom quern\n"
    # The task is a quern job: listed natively, with its quern output downloadable like any other.
    job = user.api.get(f"/v1/jobs/{task_id}").json()
    assert job["state"] == "SUCCEEDED"
    assert [output["path"] for output in job["outputs"]] == ["count.txt"]
    link = user.api.get(f"/v1/jobs/{task_id}/outputs/count.txt").json()["url"]
    assert httpx.get(link).text.strip() == "3"


def test_an_executor_echoing_hello_reports_it_as_its_stdout(tes_stack: TesStack, user: User) -> None:
    task_id = user.tes.create_task(tes.Task(executors=[executor(tes_stack.image, "echo", "hello")]))
    done = finished(user.tes, task_id)
    assert done.state == "COMPLETE"
    assert done.logs[0].logs[0].stdout == "hello\n"


def test_a_failing_executor_is_an_executor_error_with_its_exit_code(tes_stack: TesStack, user: User) -> None:
    task_id = user.tes.create_task(tes.Task(executors=[executor(tes_stack.image, "/bin/sh", "-c", "exit 7")]))
    done = finished(user.tes, task_id)
    assert done.state == "EXECUTOR_ERROR"
    assert done.logs[0].logs[0].exit_code == 7


def test_tasks_are_listed_page_by_page_and_by_filters(tes_stack: TesStack, user: User) -> None:
    prefix = f"list-{uuid.uuid4().hex[:6]}"
    ids = [
        user.tes.create_task(
            tes.Task(name=f"{prefix}-{n}", tags={"n": str(n)}, executors=[executor(tes_stack.image, "true")])
        )
        for n in range(3)
    ]
    seen: list[str] = []
    token = None
    while True:
        page = user.tes.list_tasks(view="MINIMAL", page_size=2, page_token=token)
        seen += [task.id for task in page.tasks or []]
        token = page.next_page_token
        if not token:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    by_tag = user.api.get("/ga4gh/tes/v1/tasks", params={"tag_key": "n", "tag_value": "1"}).json()
    assert [task["id"] for task in by_tag["tasks"]] == [ids[1]]
    by_name = user.api.get("/ga4gh/tes/v1/tasks", params={"name_prefix": prefix, "view": "BASIC"}).json()
    assert sorted(task["name"] for task in by_name["tasks"]) == [f"{prefix}-{n}" for n in range(3)]


def test_a_running_task_canceled_ends_canceled_and_its_container_is_gone(tes_stack: TesStack, user: User) -> None:
    task_id = user.tes.create_task(tes.Task(executors=[executor(tes_stack.image, "sleep", "300")]))
    eventually(lambda: user.tes.get_task(task_id, "MINIMAL").state == "RUNNING" or None, "the task runs", timeout=60)
    user.tes.cancel_task(task_id)
    done = eventually(
        lambda: ((task := user.tes.get_task(task_id, "FULL")).state == "CANCELED" and task) or None,
        "the task is canceled",
        timeout=60,
    )
    assert done.state == "CANCELED"
    podman = shutil.which("podman") or "podman"
    listed = subprocess.run(
        [podman, "ps", "--all", "--quiet", "--filter", f"label=quern.job={task_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == ""


def test_another_users_task_is_not_found(tes_stack: TesStack, user: User) -> None:
    task_id = user.tes.create_task(tes.Task(executors=[executor(tes_stack.image, "true")]))
    stack = tes_stack.stack
    admin = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    other = client_for(stack.gateway_url, *add_user(admin))
    admin.close()
    try:
        assert other.get(f"/ga4gh/tes/v1/tasks/{task_id}").status_code == 404
        assert other.post(f"/ga4gh/tes/v1/tasks/{task_id}:cancel").status_code == 404
        listed = other.get("/ga4gh/tes/v1/tasks").json()
        assert task_id not in [task["id"] for task in listed.get("tasks", [])]
    finally:
        other.close()
    deadline = time.monotonic() + 60
    while user.tes.get_task(task_id, "MINIMAL").state not in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
