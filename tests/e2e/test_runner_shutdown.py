"""A runner told to stop drains, then hands its jobs back to the queue; one killed outright loses them to the reaper."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from devstack.processes import free_port
from devstack.stack import Stack
from tests.helpers.clients import (
    archive_members,
    client_for,
    eventually,
    long_job,
    processes_mentioning,
    script_app,
    tiny_job,
    wait_for,
    wait_for_app,
)
from tests.helpers.stacks import stop_all


@pytest.fixture(scope="module")
def services(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway, runner and results of their own (sharing the test servers), free to be stopped."""
    stack = replace(
        servers,
        state_dir=tmp_path_factory.mktemp("own"),
        ports=replace(servers.ports, gateway=free_port()),
        namespace=f"{servers.namespace}-own",
        database=f"{servers.database}_own_{uuid.uuid4().hex[:6]}",
    )
    try:
        yield stack
    finally:
        stop_all(stack.services())


@pytest.fixture
def own_stack(services: Stack) -> Stack:
    """Those services, each running: a runner an earlier test stopped or killed is started again."""
    services.start_services()
    return services


def test_stopping_a_runner_mid_job_hands_the_job_back_without_counting_an_attempt(own_stack: Stack) -> None:
    api = client_for(own_stack.gateway_url, own_stack.admin_username, own_stack.admin_password)
    try:
        job = long_job(api)
        wait_for_app(job["id"])
        runner = own_stack.services()[1]
        started = time.monotonic()
        assert runner.stop(timeout=60)
        assert time.monotonic() - started < 20  # the drain (2 s here), the app's grace (2 s), the hand-back

        back = api.get(f"/v1/jobs/{job['id']}").json()
        assert (back["state"], back["attempt"], back["preemptions"]) == ("QUEUED", 1, 1), back
        handed = back["history"][-1]
        assert (handed["from"], handed["to"], handed["by"], handed["reason"]) == (
            "RUNNING",
            "QUEUED",
            "runner",
            "preempted by shutdown",
        )
        assert processes_mentioning(job["id"]) == []
        assert runner.logfile.read_text().count('"event": "worker_stopped"') == 1

        assert runner.start()  # the next runner takes it up again
        wait_for_app(job["id"])
        api.post(f"/v1/jobs/{job['id']}/cancel")
        assert wait_for(api, job["id"])["state"] == "CANCELED"
    finally:
        api.close()


def test_a_job_that_ends_within_the_drain_finishes_as_usual(own_stack: Stack) -> None:
    api = client_for(own_stack.gateway_url, own_stack.admin_username, own_stack.admin_password)
    try:
        job = tiny_job(api, seconds=1)
        wait_for_app(job["id"])
        runner = own_stack.services()[1]
        assert runner.stop(timeout=60)
        done = api.get(f"/v1/jobs/{job['id']}").json()
        assert (done["state"], done["preemptions"]) == ("SUCCEEDED", 0), done
    finally:
        api.close()


RESUMING = """
import os, pathlib, time
state = pathlib.Path(os.environ["QUERN_CHECKPOINT_DIR"]) / "deep" / "state.txt"
found = int(state.read_text()) if state.exists() else 0
print("resumed from", found, flush=True)
if not found:
    state.parent.mkdir(exist_ok=True)
    state.write_text("41")
    time.sleep(600)
open("result.txt", "w").write(str(found + 1))
"""


def test_a_preempted_app_resumes_from_its_checkpoint(own_stack: Stack) -> None:
    api = client_for(own_stack.gateway_url, own_stack.admin_username, own_stack.admin_password)
    try:
        app = script_app(api, RESUMING, args=[], text_param=False, outputs=["result.txt"])
        job = api.post("/v1/jobs", json={"app": app}).json()
        state = own_stack.state_dir / "work" / job["id"] / "tmp" / "checkpoint" / "deep" / "state.txt"
        eventually(state.exists, "the app never wrote its checkpoint", every=0.05)
        runner = own_stack.services()[1]
        assert runner.stop(timeout=60)
        back = api.get(f"/v1/jobs/{job['id']}").json()
        assert (back["state"], back["preemptions"]) == ("QUEUED", 1), back

        assert runner.start()
        done = wait_for(api, job["id"])
        assert (done["state"], done["attempt"], done["preemptions"]) == ("SUCCEEDED", 1, 1), done
        assert archive_members(api, job["id"])["outputs/result.txt"] == b"42"
    finally:
        api.close()


def test_a_runner_killed_mid_job_takes_its_app_along_and_the_job_runs_again(own_stack: Stack) -> None:
    api = client_for(own_stack.gateway_url, own_stack.admin_username, own_stack.admin_password)
    try:
        job = tiny_job(api, seconds=1)
        wait_for_app(job["id"])
        runner = own_stack.services()[1]
        pid = runner.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # no drain, no goodbye: the machine died
        eventually(lambda: not processes_mentioning(job["id"]), "the app outlived its runner", timeout=10, every=0.05)
        runner.stop()  # forget the dead process
        assert runner.start()  # a new runner (a new id), as after a reboot
        done = wait_for(api, job["id"], timeout=90)
        assert done["state"] == "SUCCEEDED" and done["attempt"] == 2
        recovery = done["history"][-1]
        assert (recovery["from"], recovery["to"], recovery["by"]) == ("RUNNING", "QUEUED", "reaper")
        assert recovery["reason"].startswith(f"the lease of worker {os.uname().nodename}-{pid}-")
        assert recovery["reason"].endswith(" lapsed; attempt 2 of 3")
    finally:
        api.close()
