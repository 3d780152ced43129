"""A real workflow engine on quern's GA4GH TES facade: Snakemake runs a two-step workflow through it.

Snakemake 9.27.1 with ``snakemake-executor-plugin-tes`` 0.1.3 (which pins ``py-tes<0.5``) and
``snakemake-storage-plugin-s3`` 0.3.6 submits one TES task per job. Each task runs the engine
image (tests/helpers/engine_image.py, built offline) with the command ``/bin/bash
/tmp/run_snakemake.sh``, the script given as an input's ``content``; the script pip-installs the
S3 plugin (from the image's wheelhouse), fetches the workflow's sources from S3 and runs the one
job, reading and writing its files in S3 itself: the tasks have no ``outputs`` and the workflow
never touches quern's storage. The S3 endpoint the script names is the one the submitting
snakemake was given (the stand-in on 127.0.0.1), so the task's container must share the host's
network: the runner runs images of ``TES_NETWORK_IMAGES`` with ``--network host`` (``TES_NETWORK``;
podman's slirp4netns and bridge networks cannot reach a port bound to the host's 127.0.0.1).

The submitting snakemake runs in a container of the same image (``--network host``), so the
plugin's old py-tes stays out of the project's environment. It authenticates with a quern API
key as the plugin's TES token (``SNAKEMAKE_TES_TOKEN``, sent as ``Authorization: Bearer``).
The plugin waits 40 s before its first status check, so the test takes about a minute and a half.

What it asks of quern: POST/GET ``/ga4gh/tes/v1/tasks[/{id}?view=MINIMAL]`` under a Bearer API
key; a MINIMAL view of exactly ``id`` and ``state`` (py-tes 0.4 refuses any field it does not
know, such as TES 1.1's ``streamable`` or ``ignore_error``, in the other views); an input given
by ``content`` staged as a file at ``/tmp/run_snakemake.sh`` with ``/tmp`` writable by the
container's user (the script runs ``mkdir /tmp/conda`` and works in ``/tmp``); and the host's
network for the engine image.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Stack
from tests.helpers.clients import add_user, client_for
from tests.helpers.containers import ULIMITS, podman_command
from tests.helpers.engine_image import IMAGE, build_engine_image
from tests.helpers.stacks import own_stack, services_running

BUCKETS = "quern-wf-*"
SNAKEFILE = """\
rule all:
    input:
        "result.txt",

rule greet:
    output:
        "greeting.txt",
    shell:
        "echo hello quern > {output}"

rule shout:
    input:
        "greeting.txt",
    output:
        "result.txt",
    shell:
        "tr a-z A-Z < {input} > {output}"
"""


@dataclass
class Engine:
    """The stack, the engine's image and the podman command that runs it."""

    stack: Stack
    image: str
    podman: Path


@pytest.fixture(scope="module")
def engine(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    image = build_engine_image()
    state = tmp_path_factory.mktemp("tes-engine")
    work = Path(tempfile.mkdtemp(prefix="quern-tes-engine-")) / "work"
    podman = podman_command(state, image)
    stack = own_stack(
        servers,
        state,
        "tes_engine",
        RUNNER_DRIVERS="local,docker",
        DOCKER_COMMAND=str(podman),
        WORK_DIR=str(work),
        TES_IMAGES=f"{IMAGE}:*",
        TES_NETWORK_IMAGES=f"{IMAGE}:*",
        TES_NETWORK="host",
        TES_S3_BUCKETS=BUCKETS,  # the stack's own S3 and keys (TES_S3_*) are every development stack's
    )
    with services_running(stack, leaving=work.parent):
        yield Engine(stack, image, podman)


@pytest.fixture
def api_key(engine: Engine) -> Iterator[str]:
    """A new user's API key, the TES token the engine presents."""
    stack = engine.stack
    admin = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    user = client_for(stack.gateway_url, *add_user(admin))
    try:
        answer = user.post("/v1/keys", json={"name": "snakemake"})
        assert answer.status_code == 201, answer.text
        yield answer.json()["secret"]
    finally:
        user.close()
        admin.close()


def snakemake(engine: Engine, workflow: Path, token: str, prefix: str) -> subprocess.CompletedProcess[str]:
    """``snakemake --executor tes`` on ``workflow``, in a container of the engine image on the host's network."""
    stack = engine.stack
    # On a task's EXECUTOR_ERROR the plugin prints $GITHUB_WORKSPACE/funnel.log (a leftover of its CI);
    # without it the error is a KeyError instead of the failed job's report.
    (workflow / "funnel.log").write_text("(the task's logs are in quern: GET /ga4gh/tes/v1/tasks/ID?view=FULL)\n")
    command = [
        str(engine.podman),
        "run",
        "--rm",
        "--network",
        "host",
        *ULIMITS,
        "--volume",
        f"{workflow}:/wf",
        "--workdir",
        "/wf",
        "--env",
        f"SNAKEMAKE_TES_TOKEN={token}",
        "--env",
        "GITHUB_WORKSPACE=/wf",
        engine.image,
        "snakemake",
        "--executor",
        "tes",
        "--tes-url",
        f"{stack.gateway_url}/ga4gh/tes",  # py-tes 0.4 appends /v1/tasks
        "--container-image",
        engine.image,
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        prefix,
        "--storage-s3-endpoint-url",
        stack.s3_url,
        "--storage-s3-access-key",
        LOCAL_S3_KEY,
        "--storage-s3-secret-key",
        LOCAL_S3_SECRET,
        "--jobs",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "10",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def tasks_of(engine: Engine, token: str, view: str = "BASIC") -> list[dict[str, Any]]:
    """The caller's TES tasks as quern lists them."""
    answer = httpx.get(
        f"{engine.stack.gateway_url}/ga4gh/tes/v1/tasks",
        params={"view": view},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    tasks: list[dict[str, Any]] = answer.json().get("tasks", [])
    return tasks


def failure(done: subprocess.CompletedProcess[str], engine: Engine, token: str) -> str:
    """What went wrong: the end of snakemake's output, then each task's state and executors' stderr in quern."""
    report = [done.stdout[-4000:], done.stderr[-4000:]]
    try:
        for task in tasks_of(engine, token, view="FULL"):
            stderr = [log.get("stderr", "") for run in task.get("logs", []) for log in run.get("logs", [])]
            report.append(f"task {task['id']} {task.get('name')} {task['state']}: {stderr}"[-3000:])
    except AssertionError as listing:
        report.append(f"(tasks not listed: {listing})"[:500])
    return "\n".join(report)


def test_snakemake_runs_a_two_step_workflow_through_the_tes_facade(
    engine: Engine, api_key: str, s3: Any, tmp_path: Path
) -> None:
    bucket = f"quern-wf-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    (workflow / "Snakefile").write_text(SNAKEFILE)

    done = snakemake(engine, workflow, api_key, f"s3://{bucket}/run")

    assert done.returncode == 0, failure(done, engine, api_key)
    result = s3.get_object(Bucket=bucket, Key="run/result.txt")["Body"].read()
    assert result == b"HELLO QUERN\n"
    tasks = tasks_of(engine, api_key)
    assert sorted(task["name"].split(".")[1] for task in tasks) == ["greet", "shout"]
    assert {task["state"] for task in tasks} == {"COMPLETE"}
    assert {executor["image"] for task in tasks for executor in task["executors"]} == {engine.image}
