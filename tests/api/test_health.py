"""Liveness, readiness and request ids of the in-process gateway; readiness needs Mongo alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient

from devstack.processes import free_port
from devstack.tcp_proxy import TcpProxy
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import ApiUserFactory, gateway_client, log_in

CHECKS_OF_ONE_CONNECTION = 5


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    """A plain user of the test stack."""
    return make_user()


def gateway_with(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **overrides: str) -> TestClient:
    """A gateway of the api tier's deployment with ``overrides`` in its environment (not started yet)."""
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    return TestClient(create_app(load(GatewaySettings)))


def closed_port_url(scheme: str) -> str:
    return (
        f"{scheme}://guest:guest@127.0.0.1:{free_port()}/%2F"
        if scheme == "amqp"
        else f"{scheme}://127.0.0.1:{free_port()}"
    )


def test_health_and_readiness(api: httpx2.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"].values()) == {"ok"}


def test_request_id_is_echoed(api: httpx2.Client) -> None:
    assert api.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"


def test_a_gateway_whose_broker_is_unreachable_is_ready_and_reports_the_broker_down(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_with(env, monkeypatch, RABBITMQ_URL=closed_port_url("amqp")) as gateway:
        answer = gateway.get("/readyz")

    assert answer.status_code == 200, answer.text
    checks = answer.json()["checks"]
    assert answer.json()["status"] == "ready" and checks["mongo"] == "ok" and checks["s3"] == "ok"
    assert checks["rabbitmq"].startswith("unavailable"), checks


def test_a_gateway_whose_object_store_is_unreachable_is_ready_and_reports_it_down(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = {"S3_ENDPOINT_URL": closed_port_url("http"), "S3_CREATE_BUCKET": "false"}
    with gateway_with(env, monkeypatch, **unreachable) as gateway:
        answer = gateway.get("/readyz")

    assert answer.status_code == 200, answer.text
    checks = answer.json()["checks"]
    assert checks["mongo"] == "ok" and checks["rabbitmq"] == "ok" and checks["s3"].startswith("unavailable"), checks


def test_a_gateway_without_mongo_is_not_ready_and_says_why(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_with(env, monkeypatch, MONGO_URL=closed_port_url("mongodb"), MONGO_TIMEOUT_SECONDS="1") as gateway:
        answer = gateway.get("/readyz")

    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    body = answer.json()
    assert body["detail"] == "not ready: mongo" and body["checks"]["mongo"].startswith("unavailable"), body
    assert body["checks"]["rabbitmq"] == "ok"


@pytest.fixture
def rabbitmq_proxy(env: dict[str, str]) -> Iterator[TcpProxy]:
    """A proxy in front of the test RabbitMQ that counts the connections made through it."""
    with TcpProxy("127.0.0.1", 5672) as proxy:
        yield proxy


def test_readiness_and_cluster_checks_reuse_one_broker_connection(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, rabbitmq_proxy: TcpProxy
) -> None:
    proxied = f"amqp://guest:guest@127.0.0.1:{rabbitmq_proxy.port}/%2F"
    # No scheduler: its passes use the publishing connections, not the probe's, and are not counted here.
    with (
        gateway_with(env, monkeypatch, RABBITMQ_URL=proxied, RUN_SCHEDULER="false") as gateway,
        gateway_client(gateway) as client,
    ):
        admin = log_in(client, env["ADMIN_USERNAME"], env["ADMIN_PASSWORD"])
        assert admin.get("/readyz").json()["checks"]["rabbitmq"] == "ok"
        opened = rabbitmq_proxy.accepted
        for _ in range(CHECKS_OF_ONE_CONNECTION):
            assert admin.get("/readyz").json()["checks"]["rabbitmq"] == "ok"
            assert admin.get("/v1/cluster").status_code == 200

    assert rabbitmq_proxy.accepted == opened, "a check opened a connection of its own"
