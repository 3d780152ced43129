"""The walking skeleton over real servers: gateway, runner and results as separate processes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pika
import pytest

from devstack.stack import Stack
from shared.broker import Broker
from shared.settings import Settings
from shared.tasks import PACKAGE_RESULTS, RUN_JOB
from tests.helpers.clients import VALLEY, UserFactory, problem, run_flood, tiny_job, upload, wait_for, wait_for_archive

# Re-exported until tests/quern imports it from tests.helpers.clients (it is outside this change).


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


def submit(api: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return api.post("/v1/jobs", json=body)


def test_example_job_runs_and_its_archive_holds_the_outputs(api: httpx.Client, stack: Stack, project: Path) -> None:
    grid_bytes = (project / VALLEY).read_bytes()
    grid = upload(api, "valley.csv", grid_bytes)
    assert grid["size"] == len(grid_bytes)
    assert grid["sha256"] == hashlib.sha256(grid_bytes).hexdigest()

    response = submit(api, {"app": "flood", "params": {"steps": 120}, "inputs": {"elevation": grid["id"]}})
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == created["url"]
    assert created["state"] in {"QUEUED", "RUNNING"}
    assert created["params"]["rain_mm"] == 50  # the default was filled in and stored

    job = wait_for(api, created["id"])
    assert job["state"] == "SUCCEEDED", job["error"]
    assert job["exit_code"] == 0 and job["error"] is None
    assert job["started"] and job["finished"] and job["elapsed_seconds"] >= 0
    assert {o["path"] for o in job["outputs"]} == {"depth.csv", "max_depth.csv", "summary.json", "flood_map.png"}

    link = wait_for_archive(api, job["id"])
    url = urlsplit(link["url"])
    assert f"{url.scheme}://{url.netloc}" == stack.s3_url  # the public endpoint
    assert parse_qs(url.query)["X-Amz-Expires"] == ["900"]
    download = httpx.get(link["url"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == link["sha256"]
    assert len(download.content) == link["size"]

    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    root = job["id"]
    manifest = json.loads(members.pop(f"{root}/manifest.json"))
    assert manifest["app"] == "flood" and manifest["app_version"] == "1.0.0"
    assert manifest["params"] == job["params"]
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        name.removeprefix(f"{root}/"): hashlib.sha256(data).hexdigest() for name, data in members.items()
    }
    for output in job["outputs"]:
        assert hashlib.sha256(members[f"{root}/outputs/{output['path']}"]).hexdigest() == output["sha256"]
    summary = json.loads(members[f"{root}/outputs/summary.json"])
    assert summary["steps"] == 120 and abs(summary["mass_balance_error_m3"]) < 1e-6
    assert b"##quern progress 100" in members[f"{root}/logs/stdout.txt"]


def test_archive_redirect_is_a_302_to_the_presigned_url(api: httpx.Client) -> None:
    job = wait_for(api, tiny_job(api)["id"])
    wait_for_archive(api, job["id"])
    response = api.get(f"/v1/jobs/{job['id']}/archive", params={"redirect": "1"})
    assert response.status_code == 302
    assert httpx.get(response.headers["location"]).status_code == 200


def test_failing_app_is_failed_with_exit_code_and_stderr_tail(api: httpx.Client, project: Path) -> None:
    table = upload(api, "samples.csv", (project / "apps/linfit/example/river_samples.csv").read_bytes())
    response = submit(
        api, {"app": "linfit", "params": {"x": "temperature_c", "y": "salinity"}, "inputs": {"table": table["id"]}}
    )
    job = wait_for(api, response.json()["id"])
    assert job["state"] == "FAILED"
    assert job["exit_code"] == 2
    assert job["error"]["reason"] == "exited with code 2"
    assert "column 'salinity' is not in the table" in job["error"]["stderr_tail"]
    assert wait_for_archive(api, job["id"])["size"] > 0  # logs of failed runs are packaged too


def test_a_whole_float_for_an_integer_parameter_reaches_the_app_as_an_integer(api: httpx.Client, project: Path) -> None:
    job = run_flood(api, project, steps=12.0)
    assert job["params"]["steps"] == 12 and isinstance(job["params"]["steps"], int)
    assert wait_for(api, job["id"])["state"] == "SUCCEEDED"


def test_archive_is_409_with_retry_after_until_packaged_and_timeouts_end_jobs(api: httpx.Client) -> None:
    job = tiny_job(api, seconds=600, timeout_seconds=2)
    response = api.get(f"/v1/jobs/{job['id']}/archive")
    problem(response, 409, "not-yet")
    assert int(response.headers["retry-after"]) > 0
    finished = wait_for(api, job["id"])
    assert finished["state"] == "TIMED_OUT"
    assert finished["error"]["reason"] == "killed after the 2 s time limit"
    assert finished["elapsed_seconds"] < 15


def test_duplicated_run_job_message_runs_the_app_once(api: httpx.Client, stack: Stack, settings: Settings) -> None:
    job = tiny_job(api)
    broker = Broker(settings)
    try:
        broker.send(RUN_JOB, job["id"])
        broker.send(RUN_JOB, job["id"])
    finally:
        broker.close()
    assert wait_for(api, job["id"])["state"] == "SUCCEEDED"
    runner_log = stack.services()[1].logfile
    deadline = time.monotonic() + 30
    while True:
        events = [json.loads(line) for line in runner_log.read_text().splitlines() if job["id"] in line]
        skipped = [e for e in events if e["event"] == "job_claim_skipped"]
        if len(skipped) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len([e for e in events if e["event"] == "job_started"]) == 1
    assert len(skipped) == 2


def test_every_job_gets_its_archive_and_nothing_is_dead_lettered(api: httpx.Client, stack: Stack) -> None:
    jobs = [tiny_job(api)["id"] for _ in range(6)]
    for job_id in jobs:
        assert wait_for(api, job_id)["state"] == "SUCCEEDED"
        assert wait_for_archive(api, job_id, timeout=30)["size"] > 0
    connection = pika.BlockingConnection(pika.URLParameters(stack.rabbitmq_url))
    try:
        channel = connection.channel()
        for task in (RUN_JOB, PACKAGE_RESULTS):
            dead = channel.queue_declare(f"{task.queue_name(stack.namespace)}.XQ", passive=True)
            assert dead.method.message_count == 0
    finally:
        connection.close()
