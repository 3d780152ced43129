"""Infrastructure for the tests: real servers over TCP, started here when absent, never skipped.

RabbitMQ is the machine's own (started, or installed with apt-get as root, when absent);
moto_server (S3) and secantusd-py (Mongo) are started on free ports in a temporary
directory. The end-to-end stack gets its own queue namespace, database and bucket, so a
development stack running beside the tests is never disturbed. A server that cannot be
started fails the run. Helpers live in tests/helpers/;
this module holds fixtures only.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devstack.processes import ensure_rabbitmq, free_port, http_ok, port_open, wait_until
from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Ports, Stack
from shared.settings import Settings, load
from tests.helpers.clients import UserFactory, add_user, client_for
from tests.helpers.stacks import (
    DATASET_MAX_BYTES,
    DATASET_MAX_MEMBERS,
    DATASET_MAX_RATIO,
    DATASET_RATIO_AFTER_BYTES,
    MAX_UPLOAD_BYTES,
    PROJECT,
    RETENTION_SWEEP_SECONDS,
    SINGLE_PUT_MAX_BYTES,
    WEBHOOK_ALLOWED_NETWORKS,
    WEBHOOK_TIMEOUT_SECONDS,
    apps_dir,
    delete_queues,
    log_tails,
    stop_all,
)

OWN = "-own"  # the namespace suffix of the stacks some e2e tests start for themselves


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """An end-to-end test that fails shows what the stack's services logged last: a CI failure can be read."""
    report: pytest.TestReport = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("the stack's service logs (tails)", log_tails(stack)))
    return report


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """RabbitMQ, S3 and Mongo answering on 127.0.0.1; the stack's services are not started."""
    ensure_rabbitmq()
    state = tmp_path_factory.mktemp("stack")
    stack = Stack(
        state_dir=state,
        ports=Ports(s3=free_port(), mongo=free_port(), gateway=free_port()),
        namespace=f"quern-test-{uuid.uuid4().hex[:8]}",
        database=f"quern_test_{uuid.uuid4().hex[:8]}",
        bucket=f"quern-test-{uuid.uuid4().hex[:8]}",
        extra_env={
            "APPS_DIR": str(apps_dir(state / "apps")),
            "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "PRESIGN_EXPIRY_SECONDS": "900",
            "S3_PART_SIZE_MB": "5",
            "WORKER_HEARTBEAT_SECONDS": "1",
            "DISPATCH_INTERVAL_SECONDS": "0.2",
            # A killed runner's jobs are recovered within seconds; a stopped one drains briefly.
            "JOB_LEASE_SECONDS": "6",
            "DRAIN_SECONDS": "2",
            "APP_GRACE_SECONDS": "2",
            "UPLOAD_SINGLE_PUT_MAX_BYTES": str(SINGLE_PUT_MAX_BYTES),
            "SCRATCH_DIR": str(tmp_path_factory.mktemp("scratch")),
            "DATASET_MAX_MEMBERS": str(DATASET_MAX_MEMBERS),
            "DATASET_MAX_BYTES": str(DATASET_MAX_BYTES),
            "DATASET_MAX_RATIO": str(DATASET_MAX_RATIO),
            "DATASET_RATIO_AFTER_BYTES": str(DATASET_RATIO_AFTER_BYTES),
            "RETENTION_SWEEP_SECONDS": str(RETENTION_SWEEP_SECONDS),
            # The webhook receivers of the tests listen on loopback, which the SSRF guard refuses unless allowed.
            "WEBHOOK_ALLOWED_NETWORKS": WEBHOOK_ALLOWED_NETWORKS,
            "WEBHOOK_BACKOFF_SECONDS": "0.2",
            "WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_SECONDS),
            "WEBHOOK_PROGRESS_SECONDS": "0",  # every tick's latest report, so a short job shows several
        },
    )
    s3, mongo = stack.servers()
    try:
        s3.start()
        mongo.start()
        wait_until(lambda: http_ok(stack.s3_url), "moto_server", timeout=60, process=s3)
        wait_until(lambda: port_open("127.0.0.1", stack.ports.mongo), "secantusd-py", timeout=60, process=mongo)
        yield stack
    finally:
        stop_all([mongo, s3])
        for namespace in (stack.namespace, stack.namespace + OWN):
            delete_queues(stack.rabbitmq_url, namespace)


@pytest.fixture
def env(servers: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test stack's environment, applied to this process for settings-loading code."""
    for name, value in servers.env().items():
        monkeypatch.setenv(name, value)
    return servers.env()


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    """Settings for adapter tests against the test servers."""
    return load(Settings)


@pytest.fixture(scope="session")
def stack(servers: Stack) -> Iterator[Stack]:
    """The gateway, runner and results services running as separate processes."""
    try:
        servers.start()
        yield servers
    finally:
        stop_all(servers.services())


@pytest.fixture(scope="session")
def project() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    """The stack's first admin, created from ADMIN_USERNAME/ADMIN_PASSWORD."""
    client = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    yield client
    client.close()


@pytest.fixture(scope="session")
def make_user(stack: Stack, admin: httpx.Client) -> Iterator[UserFactory]:
    """Create a user through the admin API and return a client logged in as them."""
    clients: list[httpx.Client] = []

    def make(role: str = "user") -> httpx.Client:
        clients.append(client_for(stack.gateway_url, *add_user(admin, role)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def s3(servers: Stack) -> Iterator[Any]:
    """A boto3 client on the test stack's S3, to check what really is (or is not) stored."""
    client = boto3.client(
        "s3",
        endpoint_url=servers.s3_url,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_S3_KEY,
        aws_secret_access_key=LOCAL_S3_SECRET,
    )
    yield client
    client.close()
