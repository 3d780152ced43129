"""The scheduler as a process of its own: gateways with RUN_SCHEDULER=false store jobs, it sends them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devstack.processes import Process, free_port
from devstack.stack import Stack
from tests.helpers.clients import client_for, tiny_job, wait_for
from tests.helpers.stacks import stop_all

# Were a scheduler running, it would pass every DISPATCH_INTERVAL_SECONDS (0.2 s in the tests) and at
# once when the job is submitted; this is several passes' time in which none may come.
NO_PASS_SECONDS = 1.5


@pytest.fixture
def split_stack(servers: Stack, tmp_path: Path) -> Iterator[tuple[Stack, Process]]:
    """Gateway (RUN_SCHEDULER=false), runner and results of their own, and a scheduler process not started yet."""
    stack = replace(
        servers,
        state_dir=tmp_path,
        ports=replace(servers.ports, gateway=free_port()),
        namespace=f"{servers.namespace}-own",  # the session deletes this namespace's queues
        database=f"{servers.database}_scheduler_{uuid.uuid4().hex[:6]}",
        extra_env=servers.extra_env | {"RUN_SCHEDULER": "false"},
    )
    scheduler = stack.scheduler()
    try:
        stack.start_services()
        yield stack, scheduler
    finally:
        stop_all([scheduler, *stack.services()])


def test_without_a_scheduler_a_job_waits_until_the_scheduler_process_sends_it(
    split_stack: tuple[Stack, Process],
) -> None:
    stack, scheduler = split_stack
    api = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    try:
        job_id = tiny_job(api)["id"]

        time.sleep(NO_PASS_SECONDS)  # nothing to wait on: the point is that nothing happens
        waiting = api.get(f"/v1/jobs/{job_id}").json()
        assert waiting["state"] == "QUEUED" and waiting["dispatched"] is None

        assert scheduler.start()
        done = wait_for(api, job_id)
        assert done["state"] == "SUCCEEDED", done["error"]
        assert done["dispatched"] is not None and {o["path"] for o in done["outputs"]} == {"copy.txt"}
        gateway = stack.services()[0]
        assert scheduler.logged("job_dispatched") and not gateway.logged("job_dispatched")

        assert scheduler.stop(timeout=10) and scheduler.logged("scheduler_stopped")  # SIGTERM ends it cleanly
    finally:
        api.close()
