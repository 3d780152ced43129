"""A job that outlives RabbitMQ's consumer_timeout runs once, and no delivery is held while it runs.

The runner acknowledges a job's message right after its claim in Mongo and runs the job beyond
the message, so the broker's ``consumer_timeout`` (30 minutes by default) never applies to a run:
RabbitMQ never closes the runner's channel, and nothing is redelivered.

These tests need a node of their own with a 3 s timeout; the machine's shared node is never
reconfigured. RabbitMQ 3.10 checks the timeout on the channel's tick (60 s by default), so the
node also ticks every second. Its directories are in /tmp, owned by ``rabbitmq``, because
``rabbitmq-server`` run as root drops to that user.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devstack.processes import Process, free_port, port_open, wait_until
from devstack.stack import Stack
from shared.tasks import RUN_JOB
from tests.helpers.clients import client_for, eventually, read_stream, script_app, states, wait_for
from tests.helpers.stacks import services_running

CONSUMER_TIMEOUT_MS = 3000
JOB_SECONDS = 8  # well past the timeout plus a tick, so the channel is closed mid-job
TIMED_OUT = b"timed out waiting for delivery acknowledgement"


class TimeoutNode:
    """A RabbitMQ node of its own, on free ports, whose consumer_timeout is a few seconds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.name = f"quern-ct-{uuid.uuid4().hex[:8]}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="quern-ct-", dir="/tmp"))
        self.base.chmod(0o755)
        (self.base / "enabled_plugins").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nconsumer_timeout = {CONSUMER_TIMEOUT_MS}\n"
        )
        # Not a rabbitmq.conf setting in 3.10 (the node refuses to boot); advanced.config only.
        (self.base / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
        for name in ("mnesia", "log"):
            (self.base / name).mkdir()
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.process = Process(
            "rabbitmq",
            ["rabbitmq-server"],
            self.base / "quern",
            {
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(free_port()),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_PID_FILE": str(self.base / "mnesia" / "node.pid"),
            },
        )

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl -n NODE args...``; its output."""
        done = subprocess.run(["rabbitmqctl", "-n", self.name, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: port_open("127.0.0.1", self.port), "the timeout node", timeout=60, process=self.process)
        assert self.ctl("eval", "application:get_env(rabbit, consumer_timeout).") == f"{{ok,{CONSUMER_TIMEOUT_MS}}}"
        assert self.ctl("eval", "application:get_env(rabbit, channel_tick_interval).") == "{ok,1000}"

    def channels_timed_out(self) -> int:
        """How many channels the node closed for holding a delivery past the timeout."""
        return sum(log.read_bytes().count(TIMED_OUT) for log in (self.base / "log").glob("*.log"))

    def stop(self) -> None:
        if self.process.running():
            subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], capture_output=True, timeout=60)
        self.process.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def node() -> Iterator[TimeoutNode]:
    node = TimeoutNode()
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def timeout_stack(servers: Stack, node: TimeoutNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway, runner and results on the timeout node (sharing the test S3 and Mongo)."""
    stack = replace(
        servers,
        state_dir=tmp_path_factory.mktemp("timeout-stack"),
        ports=replace(servers.ports, gateway=free_port(), rabbitmq=node.port),
        namespace=f"{servers.namespace}-ct",
        database=f"{servers.database}_ct_{uuid.uuid4().hex[:6]}",
    )
    with services_running(stack):
        yield stack


@pytest.fixture(scope="module")
def admin_ct(timeout_stack: Stack) -> Iterator[httpx.Client]:
    client = client_for(timeout_stack.gateway_url, timeout_stack.admin_username, timeout_stack.admin_password)
    yield client
    client.close()


def sleeper(admin: httpx.Client, seconds: float) -> str:
    """An app that sleeps ``seconds`` and writes done.txt."""
    script = f"import time; time.sleep({seconds}); open('done.txt', 'w').write('ok')"
    return script_app(admin, script, args=[], text_param=False, outputs=["done.txt"])


def runs(stack: Stack, api: httpx.Client, job_id: str) -> list[str]:
    """The job's recorded states, checked against the runner's own count of the runs it started."""
    lines = stack.services()[1].logfile.read_text().splitlines()
    started = sum(1 for line in lines if '"event": "job_started"' in line and f'"job_id": "{job_id}"' in line)
    assert started == 1, f"the runner started job {job_id} {started} times"
    return states(read_stream(api, f"/v1/jobs/{job_id}/events"))


def unacknowledged(node: TimeoutNode, stack: Stack) -> int:
    """Deliveries of the stack's run_job queue that the runner holds unacknowledged right now."""
    listed = node.ctl("list_queues", "-q", "name", "messages_unacknowledged")
    queue = RUN_JOB.queue_name(stack.namespace)
    return sum(int(count) for name, count in (line.split() for line in listed.splitlines()) if name == queue)


def test_a_job_longer_than_the_consumer_timeout_runs_once_holding_no_delivery(
    node: TimeoutNode, timeout_stack: Stack, admin_ct: httpx.Client
) -> None:
    long_app, short_app = sleeper(admin_ct, JOB_SECONDS), sleeper(admin_ct, 0.5)
    runner = timeout_stack.services()[1]

    job_id = admin_ct.post("/v1/jobs", json={"app": long_app}).json()["id"]
    eventually(lambda: admin_ct.get(f"/v1/jobs/{job_id}").json()["state"] == "RUNNING", "the job never started")
    held, looked = [], []
    while admin_ct.get(f"/v1/jobs/{job_id}").json()["state"] == "RUNNING":
        held.append(unacknowledged(node, timeout_stack))
        looked.append(time.monotonic())
        time.sleep(0.5)
    # Acked at the claim: nothing held while the app ran. A look (rabbitmqctl) takes seconds on a busy
    # machine, so the looks are judged by the time they span, not by their number.
    assert set(held) == {0} and looked[-1] - looked[0] >= JOB_SECONDS / 2, (held, looked)
    job = wait_for(admin_ct, job_id, timeout=45)
    assert (job["state"], job["attempt"]) == ("SUCCEEDED", 1), job
    assert node.channels_timed_out() == 0, "RabbitMQ closed the runner's channel for a delivery held too long"
    assert not runner.logged("job_claim_skipped")  # never redelivered

    after = wait_for(admin_ct, admin_ct.post("/v1/jobs", json={"app": short_app}).json()["id"], timeout=20)
    assert after["state"] == "SUCCEEDED", after
    for done in (job_id, after["id"]):
        assert runs(timeout_stack, admin_ct, done) == ["QUEUED", "RUNNING", "SUCCEEDED"]
