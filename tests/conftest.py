"""Infrastructure for the tests: real servers over TCP, started here when absent, never skipped.

RabbitMQ is the machine's own (started, or installed with apt-get as root, when absent);
moto_server (S3) and secantusd-py (Mongo) are started on free ports in a temporary
directory. The end-to-end stack gets its own queue namespace, database and bucket, so a
development stack running beside the tests is never disturbed. A server that cannot be
started fails the run.
"""

from __future__ import annotations

import io
import secrets
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pika
import pytest

from devstack.processes import ensure_rabbitmq, free_port, http_ok, port_open, wait_until
from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Ports, Stack
from services.gateway.plumbing.problems import problem_types
from shared.settings import Settings, load
from shared.tasks import DELIVER_WEBHOOK, PACKAGE_RESULTS, RUN_JOB

MAX_UPLOAD_BYTES = 200 * 2**20  # room for the CLI's 200 MB upload
SINGLE_PUT_MAX_BYTES = 8 * 2**20  # presigned uploads above this are multipart, in 5 MiB parts
# Small dataset limits, so the hostile-bundle tests stay quick.
DATASET_MAX_MEMBERS = 20
DATASET_MAX_BYTES = 8 * 2**20
DATASET_MAX_RATIO = 50
DATASET_RATIO_AFTER_BYTES = 2**20
RETENTION_SWEEP_SECONDS = 1  # the results workers' sweep, so retention tests see expiry within seconds
WEBHOOK_ALLOWED_NETWORKS = "127.0.0.0/8"
WEBHOOK_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """RabbitMQ, S3 and Mongo answering on 127.0.0.1; the stack's services are not started."""
    ensure_rabbitmq()
    stack = Stack(
        state_dir=tmp_path_factory.mktemp("stack"),
        ports=Ports(s3=free_port(), mongo=free_port(), gateway=free_port()),
        namespace=f"quern-test-{uuid.uuid4().hex[:8]}",
        database=f"quern_test_{uuid.uuid4().hex[:8]}",
        bucket=f"quern-test-{uuid.uuid4().hex[:8]}",
        extra_env={
            "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "PRESIGN_EXPIRY_SECONDS": "900",
            "S3_PART_SIZE_MB": "5",
            "WORKER_HEARTBEAT_SECONDS": "1",
            "DISPATCH_INTERVAL_SECONDS": "0.2",
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
        mongo.stop()
        s3.stop()
        _delete_queues(stack)


def _delete_queues(stack: Stack) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(stack.rabbitmq_url))
    try:
        # The session's namespace and those of the tests' own stacks (test_runner_shutdown).
        for namespace in (stack.namespace, f"{stack.namespace}-own"):
            for task in (RUN_JOB, PACKAGE_RESULTS, DELIVER_WEBHOOK):
                base = task.queue_name(namespace)
                for name in (base, f"{base}.DQ", f"{base}.XQ"):
                    channel = connection.channel()
                    channel.queue_delete(name)
                    channel.close()
    finally:
        connection.close()


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
        for process in reversed(servers.services()):
            process.stop()


@pytest.fixture(scope="session")
def project() -> Path:
    return Path(__file__).resolve().parent.parent


def client_for(base_url: str, username: str, password: str) -> httpx.Client:
    """An HTTP client logged in as ``username``."""
    client = httpx.Client(base_url=base_url, timeout=60)
    answer = client.post("/v1/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


@pytest.fixture(scope="session")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    """The stack's first admin, created from ADMIN_USERNAME/ADMIN_PASSWORD."""
    client = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    yield client
    client.close()


UserFactory = Callable[..., httpx.Client]


@pytest.fixture(scope="session")
def make_user(stack: Stack, admin: httpx.Client) -> Iterator[UserFactory]:
    """Create a user through the admin API and return a client logged in as them."""
    clients: list[httpx.Client] = []

    def make(role: str = "user") -> httpx.Client:
        username, password = f"u{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
        answer = admin.post("/v1/users", json={"username": username, "password": password, "role": role})
        assert answer.status_code == 201, answer.text
        clients.append(client_for(stack.gateway_url, username, password))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def make_dataset(user: httpx.Client, name: str) -> str:
    """A small dataset owned by ``user``; returns its id."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("data/a.csv", "x,y\n1,2\n")
    bundle_file = user.post("/v1/files", params={"name": f"{name}.zip"}, content=buffer.getvalue()).json()
    answer = user.post("/v1/datasets", json={"file_id": bundle_file["id"], "name": name})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


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


def problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status``, of a documented type (``urn:quern:problem:<kind>`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert problem_types().get(body["type"]) == status, body["type"]
    if kind is not None:
        assert body["type"] == f"urn:quern:problem:{kind}"
    return body


def upload(api: httpx.Client, name: str, data: bytes, **params: str) -> dict[str, Any]:
    """Upload ``data`` as the raw body; returns the file."""
    response = api.post("/v1/files", params={"name": name, **params}, content=data)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def open_multipart_uploads(s3: Any, bucket: str) -> set[tuple[str, str]]:
    """(key, upload id) of every multipart upload not yet completed or aborted in ``bucket``.

    Pending presigned uploads legitimately hold one open until they finish or expire, so tests
    compare this set before and after what they do rather than expect it to be empty.
    """
    answer = s3.list_multipart_uploads(Bucket=bucket)
    return {(upload["Key"], upload["UploadId"]) for upload in answer.get("Uploads", [])}
