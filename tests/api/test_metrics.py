"""The gateway's /metrics: Prometheus's text format, requests by route template, job counts, where it is served."""

from __future__ import annotations

import time

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient

from devstack.processes import free_port
from services.gateway.app import create_app
from shared.models import new_id
from shared.settings import GatewaySettings, load
from tests.helpers.clients import TINY, ApiUserFactory, eventually, gateway_client, log_in, tiny_job
from tests.helpers.metrics import Samples, label_values, parse, value


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    return make_user()


def scrape(client: httpx2.Client | httpx.Client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain"), answer.text
    return parse(answer.text)


def gateway_with(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> TestClient:
    for name, variable in overrides.items():
        monkeypatch.setenv(name, variable)
    return TestClient(create_app(load(GatewaySettings)))


def test_requests_are_counted_by_route_template_and_status_without_credentials(
    api: httpx2.Client, anonymous: httpx2.Client
) -> None:
    job_id = new_id()
    route = {"method": "GET", "route": "/v1/jobs/{job_id}", "status": "404"}
    before = value(scrape(anonymous), "quern_http_requests_total", **route)

    assert api.get(f"/v1/jobs/{job_id}").status_code == 404
    after = scrape(anonymous)

    assert value(after, "quern_http_requests_total", **route) == before + 1
    assert value(after, "quern_http_request_duration_seconds_count", method="GET", route=route["route"]) >= 1
    assert not any(job_id in template for template in label_values(after, "quern_http_requests_total", "route"))


def test_a_path_no_route_matches_is_counted_as_unmatched(anonymous: httpx2.Client) -> None:
    labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = value(scrape(anonymous), "quern_http_requests_total", **labels)

    assert anonymous.get(f"/no-such-{new_id()}").status_code == 404

    assert value(scrape(anonymous), "quern_http_requests_total", **labels) == before + 1


def test_a_submitted_job_moves_the_submission_counter_and_the_queued_gauge(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_with(monkeypatch, METRICS_REFRESH_SECONDS="0.2") as gateway, gateway_client(gateway) as client:
        admin = log_in(client, env["ADMIN_USERNAME"], env["ADMIN_PASSWORD"])
        before = scrape(admin)
        tiny_job(admin)  # no runner in this tier: it stays QUEUED

        after = scrape(admin)
        assert (
            value(after, "quern_jobs_submitted_total", app=TINY)
            == value(before, "quern_jobs_submitted_total", app=TINY) + 1
        )
        submitted = time.time()

        def counted_since() -> Samples | None:
            samples = scrape(admin)
            return samples if value(samples, "quern_metrics_counted_timestamp_seconds") > submitted else None

        counted = eventually(counted_since, "a count of the jobs after the submission", timeout=10)
    assert value(counted, "quern_jobs", state="QUEUED", app=TINY) >= 1
    assert value(counted, "quern_jobs", state="RUNNING", app=TINY) == 0
    assert f"{env['QUEUE_NAMESPACE']}.jobs" in label_values(counted, "quern_queue_messages", "queue")


def test_metrics_can_be_taken_off_the_api_port_and_served_on_a_port_of_their_own(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    port = free_port()
    with gateway_with(monkeypatch, GATEWAY_METRICS="false", METRICS_PORT=str(port)) as gateway:
        assert gateway.get("/metrics").status_code == 404
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as own_port:
            samples = scrape(own_port)
    assert label_values(samples, "quern_http_requests_total", "route")
