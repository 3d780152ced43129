"""The api tier: the gateway in this process (``create_app`` inside an entered TestClient) against the real servers.

No runner or results process runs, so jobs stay QUEUED. The tier has its own database, bucket
and queue namespace on the session's servers, so it never shares data or RabbitMQ queues with
the e2e stack. Here ``stack`` names that deployment (its names, secrets and environment) and
starts nothing, so a test that asks for it never brings up the services by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx2
import pytest
from starlette.testclient import TestClient

from devstack.stack import Stack
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import ApiUserFactory, add_user, gateway_client, log_in
from tests.helpers.stacks import delete_queues


@pytest.fixture(scope="session")
def stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The api tier's deployment on the session's servers; its queues are deleted at the end."""
    deployment = replace(
        servers,
        state_dir=tmp_path_factory.mktemp("api"),
        namespace=f"{servers.namespace}-api",
        database=f"{servers.database}_api",
        bucket=f"{servers.bucket}-api",
        extra_env=servers.extra_env
        | {
            "SCRATCH_DIR": str(tmp_path_factory.mktemp("api-scratch")),
            # No runner heartbeats here, so a pass sends nothing: passes only when woken, not every 0.2 s.
            "DISPATCH_INTERVAL_SECONDS": "60",
            # Open event streams check their caller's credential every second (10 s at most in a deployment).
            "STREAM_RECHECK_SECONDS": "1",
            # TES tasks may name these images and buckets (no runner here: nothing is pulled or fetched).
            "TES_IMAGES": "localhost/quern-*",
            "TES_S3_BUCKETS": "quern-tes-*",
        },
    )
    try:
        yield deployment
    finally:
        delete_queues(deployment.rabbitmq_url, deployment.namespace)


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The api tier's environment, applied to this process for settings-loading code."""
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    return stack.env()


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[TestClient]:
    """The gateway app with its lifespan running: the one event loop every api-tier request runs on."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env().items():
            patch.setenv(name, value)
        settings = load(GatewaySettings)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def anonymous(gateway: TestClient) -> Iterator[httpx2.Client]:
    """A client of the gateway sending no credentials."""
    with gateway_client(gateway) as client:
        yield client


@pytest.fixture(scope="session")
def admin(stack: Stack, gateway: TestClient) -> Iterator[httpx2.Client]:
    """The first admin, created from ADMIN_USERNAME/ADMIN_PASSWORD."""
    with gateway_client(gateway) as client:
        yield log_in(client, stack.admin_username, stack.admin_password)


@pytest.fixture(scope="session")
def make_user(gateway: TestClient, admin: httpx2.Client) -> Iterator[ApiUserFactory]:
    """Create a user through the admin API and return a client logged in as them."""
    clients: list[httpx2.Client] = []

    def make(role: str = "user") -> httpx2.Client:
        clients.append(log_in(gateway_client(gateway), *add_user(admin, role)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()
