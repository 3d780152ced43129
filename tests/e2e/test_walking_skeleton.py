"""The walking skeleton over real servers: gateway, runner and results as separate processes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pika
import pytest

from devstack.stack import Stack
from shared.broker import Broker
from shared.models import JobState
from shared.settings import Settings
from shared.tasks import PACKAGE_RESULTS, RUN_JOB
from tests.conftest import MAX_UPLOAD_BYTES, UserFactory, open_multipart_uploads, problem, upload

pytestmark = pytest.mark.e2e
TERMINAL = {state.value for state in JobState if state.terminal}


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


def submit(api: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return api.post("/v1/jobs", json=body)


def wait_for(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.1)


def wait_for_archive(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (response := api.get(f"/v1/jobs/{job_id}/archive")).status_code == 409:
        assert time.monotonic() < deadline, "archive never appeared"
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def run_flood(api: httpx.Client, project: Path, **params: Any) -> dict[str, Any]:
    grid = upload(api, "valley.csv", (project / "apps/flood/example/valley.csv").read_bytes())
    response = submit(api, {"app": "flood", "params": params, "inputs": {"elevation": grid["id"]}})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_example_job_runs_and_its_archive_holds_the_outputs(api: httpx.Client, stack: Stack, project: Path) -> None:
    grid_bytes = (project / "apps/flood/example/valley.csv").read_bytes()
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


def test_archive_redirect_is_a_302_to_the_presigned_url(api: httpx.Client, project: Path) -> None:
    job = wait_for(api, run_flood(api, project, steps=5)["id"])
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


def test_bad_params_are_422_listing_every_error_and_store_nothing(api: httpx.Client, project: Path) -> None:
    grid = upload(api, "valley.csv", b"1,2,3\n4,5,6\n7,8,9\n")
    body = {
        "app": "flood",
        "params": {"steps": 0, "rain_mm": "lots", "colour": "red"},
        "inputs": {"elevation": grid["id"]},
    }
    details = problem(submit(api, body), 422)
    assert {e["pointer"] for e in details["errors"]} == {"/params", "/params/rain_mm", "/params/steps"}
    assert any("colour" in e["detail"] for e in details["errors"])


def test_malformed_job_request_is_422_with_pointers(api: httpx.Client) -> None:
    details = problem(submit(api, {"app": "flood", "inputs": {"elevation": 5}, "urgency": 1}), 422)
    assert {e["pointer"] for e in details["errors"]} == {"/inputs/elevation", "/urgency"}


def test_nan_and_infinity_are_not_json_numbers(api: httpx.Client) -> None:
    body = b'{"app": "flood", "params": {"rain_mm": NaN}, "inputs": {}}'
    problem(api.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 400)
    body = b'{"app": "flood", "params": {"rain_mm": Infinity}, "inputs": {}}'
    problem(api.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 400)


def test_a_whole_float_for_an_integer_parameter_reaches_the_app_as_an_integer(api: httpx.Client, project: Path) -> None:
    job = run_flood(api, project, steps=12.0)
    assert job["params"]["steps"] == 12 and isinstance(job["params"]["steps"], int)
    assert wait_for(api, job["id"])["state"] == "SUCCEEDED"


def test_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    problem(api.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), 400)


def test_oversized_job_request_is_413_without_reading_it_all(api: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"app": "flood", "params": {"pad": "'
        for _ in range(64):
            yield b"x" * 2**20

    problem(api.post("/v1/jobs", content=body(), headers={"content-type": "application/json"}), 413)


def test_unknown_input_file_is_404(api: httpx.Client) -> None:
    response = submit(api, {"app": "flood", "inputs": {"elevation": "01nosuchfile0000000000000"}})
    assert "01nosuchfile" in problem(response, 404)["detail"]


def test_unknown_app_is_404(api: httpx.Client) -> None:
    problem(submit(api, {"app": "no-such-app"}), 404)
    problem(api.get("/v1/apps/no-such-app"), 404)


def test_unknown_job_and_route_are_404_problems(api: httpx.Client) -> None:
    problem(api.get("/v1/jobs/01nosuchjob"), 404)
    problem(api.get("/v1/jobs/01nosuchjob/archive"), 404)
    problem(api.get("/v1/nothing-here"), 404, "not-found")
    problem(api.put("/v1/me"), 405, "method-not-allowed")


def test_archive_is_409_with_retry_after_until_packaged_and_timeouts_end_jobs(api: httpx.Client, project: Path) -> None:
    grid = upload(api, "valley.csv", (project / "apps/flood/example/valley.csv").read_bytes())
    job = submit(
        api, {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 2}
    ).json()
    response = api.get(f"/v1/jobs/{job['id']}/archive")
    problem(response, 409, "not-yet")
    assert int(response.headers["retry-after"]) > 0
    finished = wait_for(api, job["id"])
    assert finished["state"] == "TIMED_OUT"
    assert finished["error"]["reason"] == "killed after the 2 s time limit"
    assert finished["elapsed_seconds"] < 15


def test_timeout_above_the_apps_maximum_is_422(api: httpx.Client) -> None:
    body = {"app": "linfit", "params": {"x": "a", "y": "b"}, "inputs": {"table": "x"}, "timeout_seconds": 10**6}
    assert problem(submit(api, body), 422)["errors"][0]["pointer"] == "/timeout_seconds"


def test_duplicated_run_job_message_runs_the_app_once(
    api: httpx.Client, stack: Stack, project: Path, settings: Settings
) -> None:
    job = run_flood(api, project, steps=50)
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


def test_large_upload_is_streamed_into_s3_intact(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = os.urandom(3 * 5 * 2**20 + 12345)  # three full 5 MiB parts and a short last one
    file = upload(api, "noise.bin", data)
    assert file["size"] == len(data)
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    stored = s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == file["sha256"]
    assert api.get(f"/v1/files/{file['id']}").json()["sha256"] == file["sha256"]


def test_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: httpx.Client, stack: Stack, s3: Any) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(MAX_UPLOAD_BYTES // 2**20 + 2):
            yield b"\0" * 2**20

    before = open_multipart_uploads(s3, stack.bucket)
    response = api.post("/v1/files", params={"name": "huge.bin"}, content=body())
    problem(response, 413, "too-large")
    assert open_multipart_uploads(s3, stack.bucket) <= before


def test_upload_needs_a_safe_name(api: httpx.Client) -> None:
    problem(api.post("/v1/files", content=b"x"), 400)
    problem(api.post("/v1/files", params={"name": "../etc/passwd"}, content=b"x"), 400)


def test_apps_are_listed_and_described_with_their_schema(api: httpx.Client) -> None:
    names = [app["name"] for app in api.get("/v1/apps").json()["items"]]
    assert names == sorted(names) and {"flood", "linfit"} <= set(names)
    flood = api.get("/v1/apps/flood").json()
    assert flood["parameters"]["properties"]["steps"]["maximum"] == 100000
    assert flood["inputs"]["elevation"]["required"] is True


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"].values()) == {"ok"}


def test_request_id_is_echoed(api: httpx.Client) -> None:
    assert api.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"


def test_every_job_is_packaged_by_the_results_service_and_nothing_is_dead_lettered(
    api: httpx.Client, stack: Stack, project: Path
) -> None:
    jobs = [run_flood(api, project, steps=3)["id"] for _ in range(6)]
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
