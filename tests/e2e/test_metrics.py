"""Prometheus metrics of real processes: the gateway's /metrics and the workers' METRICS_PORT, parsed by
prometheus-client's own parser, move when a job runs; the workers touch their liveness file at each heartbeat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devstack.processes import free_port
from devstack.stack import Stack
from shared.tasks import RESULTS_SERVICE, RUNNER_SERVICE
from tests.helpers.clients import TINY, client_for, eventually, tiny_job, wait_for, wait_for_archive
from tests.helpers.metrics import Samples, parse, value
from tests.helpers.stacks import own_stack, services_running

HEARTBEAT_SECONDS = 1  # the session's WORKER_HEARTBEAT_SECONDS


@pytest.fixture(scope="module")
def measured(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose workers serve metrics on ports of their own and touch liveness files of their own.

    Every run is packaged by the results service (RUNNER_ARCHIVE_MAX_MB=0), so its counters move too.
    """
    state = tmp_path_factory.mktemp("metrics")
    stack = own_stack(servers, state, "metrics", RUNNER_ARCHIVE_MAX_MB="0", METRICS_REFRESH_SECONDS="0.5")
    workers = {
        service: {"METRICS_PORT": str(free_port()), "LIVENESS_FILE": str(state / f"{service}.alive")}
        for service in ("runner", "results")
    }
    with services_running(replace(stack, service_env=workers)) as running:
        yield running


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def worker_url(stack: Stack, service: str) -> str:
    return f"http://127.0.0.1:{stack.service_env[service]['METRICS_PORT']}"


def test_the_counters_of_the_gateway_and_the_workers_move_when_a_job_runs(measured: Stack) -> None:
    runner, results = worker_url(measured, "runner"), worker_url(measured, "results")
    before = {url: scrape(url) for url in (measured.gateway_url, runner, results)}
    api = client_for(measured.gateway_url, measured.admin_username, measured.admin_password)
    try:
        job = tiny_job(api)
        assert wait_for(api, job["id"])["state"] == "SUCCEEDED"
        wait_for_archive(api, job["id"])
    finally:
        api.close()
    finished = time.time()

    def moved(url: str, name: str, **labels: str) -> float:
        return value(scrape(url), name, **labels) - value(before[url], name, **labels)

    assert moved(measured.gateway_url, "quern_jobs_submitted_total", app=TINY) == 1
    assert moved(measured.gateway_url, "quern_jobs_dispatched_total") == 1
    assert moved(measured.gateway_url, "quern_dispatch_latency_seconds_count") == 1
    assert moved(measured.gateway_url, "quern_http_requests_total", method="POST", route="/v1/jobs", status="201") == 1
    assert moved(runner, "quern_runner_runs_total", app=TINY, outcome="SUCCEEDED") == 1
    assert moved(runner, "quern_runner_run_seconds_count", app=TINY) == 1
    assert moved(runner, "quern_runner_transfer_bytes_total", kind="inputs") == len(b"tiny\n")
    assert moved(runner, "quern_runner_transfer_bytes_total", kind="outputs") == len(b"tiny\n")
    assert moved(runner, "quern_worker_messages_total", service=RUNNER_SERVICE, actor="run_job", outcome="ok") == 1
    assert moved(results, "quern_results_archives_total", kind="run") == 1
    assert moved(results, "quern_results_archive_bytes_total", kind="run") > 0
    assert (
        moved(results, "quern_worker_messages_total", service=RESULTS_SERVICE, actor="package_results", outcome="ok")
        >= 1
    )

    # Once counted after the job ended, the gauges show nothing active for its app.
    counted = eventually(
        lambda: (
            s
            if value(s := scrape(measured.gateway_url), "quern_metrics_counted_timestamp_seconds") > finished
            else None
        ),
        "a count of the jobs after the run",
        timeout=15,
    )
    assert value(counted, "quern_jobs", state="RUNNING", app=TINY) == 0
    assert value(counted, "quern_jobs", state="QUEUED", app=TINY) == 0


def test_workers_report_their_slots(measured: Stack) -> None:
    runner = scrape(worker_url(measured, "runner"))
    results = scrape(worker_url(measured, "results"))

    assert value(runner, "quern_worker_slots", service=RUNNER_SERVICE) == measured.runner_threads
    assert value(runner, "quern_worker_busy_slots", service=RUNNER_SERVICE) == 0
    assert value(results, "quern_worker_slots", service=RESULTS_SERVICE) >= 1
    assert value(results, "quern_worker_heartbeat_timestamp_seconds", service=RESULTS_SERVICE) > time.time() - 10


@pytest.mark.parametrize("service", ["runner", "results"])
def test_a_worker_touches_its_liveness_file_at_each_heartbeat(measured: Stack, service: str) -> None:
    alive = Path(measured.service_env[service]["LIVENESS_FILE"])
    first = eventually(lambda: alive.stat().st_mtime if alive.exists() else None, "the liveness file", timeout=10)

    later = eventually(
        lambda: m if (m := alive.stat().st_mtime) > first else None, "a later heartbeat", timeout=5 * HEARTBEAT_SECONDS
    )

    assert later - first < 5 * HEARTBEAT_SECONDS
