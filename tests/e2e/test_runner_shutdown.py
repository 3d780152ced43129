"""A runner told to stop mid-job ends the app and records why, instead of leaving the job RUNNING."""

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
    client_for,
    eventually,
    long_job,
    processes_mentioning,
    tiny_job,
    wait_for,
    wait_for_app,
    wait_for_archive,
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


def test_stopping_a_runner_mid_job_kills_the_app_and_records_failed(own_stack: Stack) -> None:
    api = client_for(own_stack.gateway_url, own_stack.admin_username, own_stack.admin_password)
    try:
        job = long_job(api)
        wait_for_app(job["id"])
        assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "RUNNING"

        runner = own_stack.services()[1]
        started = time.monotonic()
        assert runner.stop(timeout=60)
        assert time.monotonic() - started < 30

        finished = api.get(f"/v1/jobs/{job['id']}").json()
        assert finished["state"] == "FAILED"
        assert finished["error"]["reason"] == "the worker shut down while the job ran"
        assert processes_mentioning(job["id"]) == []
        assert wait_for_archive(api, job["id"])["size"] > 0  # its logs were saved and packaged
        assert runner.logfile.read_text().count('"event": "worker_stopped"') == 1
        assert wait_for(api, job["id"])["state"] == "FAILED"
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
        assert recovery["reason"] == f"worker {os.uname().nodename}-{pid} stopped heartbeating; attempt 2 of 3"
    finally:
        api.close()
