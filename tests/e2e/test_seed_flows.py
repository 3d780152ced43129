"""One user story per seed project (issue 3), each over the whole stack, with the shipped apps.

TuCluster: a model zip becomes a dataset; a run names one control file of it; results are
downloaded. caesar-rest: upload a file, run an app with options, read the status, download the
output tar.gz, cancel another job. Pacifica: a tar bundle with metadata.txt, a job reporting
its step and percentage, an admin failing a stuck job with a reason. OpenQuake: running and past
jobs, a job's outputs, stopping a job, cluster info.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import Stack
from tests.helpers.clients import (
    VALLEY,
    UserFactory,
    archive_members,
    dispatcher_passed,
    orphan,
    processes_mentioning,
    queued_behind_busy_slots,
    read_stream,
    upload,
    wait_for,
    wait_for_app,
)

ENDED = "SUCCEEDED,FAILED,TIMED_OUT,CANCELED"


def long_flood(user: httpx.Client, project: Path) -> dict[str, Any]:
    """A flood that runs until canceled (or for its two minutes)."""
    grid = upload(user, "valley.csv", (project / VALLEY).read_bytes())
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 120}
    return submitted(user, body)


def submitted(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == answer.json()["url"]
    return answer.json()  # type: ignore[no-any-return]


def ids(api: httpx.Client, **filters: str) -> set[str]:
    answer = api.get("/v1/jobs", params=filters)
    assert answer.status_code == 200, answer.text
    return {job["id"] for job in answer.json()["items"]}


# TuCluster: model zip -> run with a control file -> poll -> results

ESTUARY = {
    "run_q10.tcf": b"! 10-year flow\nRead CSV == bc_dbase/q10.csv\nRead CSV == bc_dbase/levels.csv  ! tide\n",
    "run_q100.tcf": b"! 100-year flow\nRead CSV == bc_dbase/q100.csv\nRead CSV == bc_dbase/levels.csv\n",
    "bc_dbase/q10.csv": b"t,q\n0,10\n1,20\n2,30\n",
    "bc_dbase/q100.csv": b"t,q\n0,100\n1,200\n2,300\n3,400\n",
    "bc_dbase/levels.csv": b"t,h\n0,1.0\n1,1.5\n2,2.0\n",
}


def test_tucluster_model_zip_runs_by_control_file_and_results_download(make_user: UserFactory) -> None:
    modeller = make_user()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in ESTUARY.items():
            bundle.writestr(name, data)
    bundle_file = upload(modeller, "estuary.zip", buffer.getvalue())
    answer = modeller.post("/v1/datasets", json={"file_id": bundle_file["id"], "name": "estuary", "tags": ["tuflow"]})
    assert answer.status_code == 201, answer.text
    model = answer.json()
    assert {m["path"] for m in model["members"]} == set(ESTUARY)

    # The models list, and TuCluster's PUT of a model's name and description.
    assert [m["id"] for m in modeller.get("/v1/datasets", params={"name_prefix": "estu"}).json()["items"]] == [
        model["id"]
    ]
    renamed = modeller.patch(model["url"], json={"name": "estuary-2026", "description": "tidal reach, v2 survey"})
    assert renamed.status_code == 200, renamed.text
    assert modeller.get(model["url"]).json()["name"] == "estuary-2026"

    control = {"dataset": model["id"], "path": "run_q100.tcf"}
    run = submitted(modeller, {"app": "tabulate", "inputs": {"control": control}, "name": "q100", "tags": ["estuary"]})
    assert run["inputs"] == {"control": control}
    finished = wait_for(modeller, run["id"])
    assert finished["state"] == "SUCCEEDED", finished["error"]
    assert finished["progress"]["percent"] == 100

    results = archive_members(modeller, run["id"])
    summary = json.loads(results["outputs/summary.json"])
    assert summary["control"] == "run_q100.tcf"
    assert summary["tables"]["bc_dbase/q100.csv"]["columns"]["q"]["mean"] == 250
    assert summary["tables"]["bc_dbase/levels.csv"]["rows"] == 3
    assert b"bc_dbase/q100.csv" in results["outputs/summary.csv"]
    assert json.loads(results["manifest.json"])["inputs"] == {"control": control}

    # Another control file of the same model, as a re-run; both runs are found by the model's tag.
    other = {"dataset": model["id"], "path": "run_q10.tcf"}
    answer = modeller.post(f"/v1/jobs/{run['id']}/rerun", json={"inputs": {"control": other}, "name": "q10"})
    assert answer.status_code == 201, answer.text
    rerun = wait_for(modeller, answer.json()["id"])
    assert rerun["state"] == "SUCCEEDED" and rerun["rerun_of"] == run["id"]
    summary = json.loads(archive_members(modeller, rerun["id"])["outputs/summary.json"])
    assert summary["tables"]["bc_dbase/q10.csv"]["columns"]["q"]["mean"] == 20
    assert ids(modeller, tag="estuary") == {run["id"], rerun["id"]}


# caesar-rest: upload -> id -> submit with options -> status -> download tar.gz -> cancel another


def test_caesar_upload_run_with_options_status_download_and_cancel(make_user: UserFactory, project: Path) -> None:
    astronomer = make_user()
    table = (project / "apps/linfit/example/river_samples.csv").read_bytes()
    answer = astronomer.post("/v1/files", files={"file": ("river_samples.csv", table, "text/csv")})  # curl -F
    assert answer.status_code == 201, answer.text
    file = answer.json()
    assert (file["name"], file["size"], file["sha256"]) == (
        "river_samples.csv",
        len(table),
        hashlib.sha256(table).hexdigest(),
    )
    download = astronomer.get(f"/v1/files/{file['id']}/download", params={"redirect": "1"})
    assert download.status_code == 302 and httpx.get(download.headers["location"]).content == table

    options = astronomer.get("/v1/apps/linfit").json()["parameters"]["properties"]
    assert {"x", "y", "degree"} <= set(options)
    job = submitted(
        astronomer,
        {
            "app": "linfit",
            "params": {"x": "temperature_c", "y": "conductivity_us_cm", "degree": 2},
            "inputs": {"table": file["id"]},
        },
    )
    status = wait_for(astronomer, job["id"])
    assert (status["state"], status["exit_code"], status["error"]) == ("SUCCEEDED", 0, None)
    assert status["elapsed_seconds"] > 0 and status["started"] <= status["finished"]

    output = archive_members(astronomer, job["id"], redirect=True)
    assert {"outputs/fit.json", "outputs/residuals.csv", "outputs/fit.png", "logs/stdout.txt"} <= set(output)
    fit = json.loads(output["outputs/fit.json"])
    assert fit["degree"] == 2 and len(fit["coefficients_highest_power_first"]) == 3

    running = long_flood(astronomer, project)
    wait_for_app(running["id"])
    assert astronomer.post(f"/v1/jobs/{running['id']}/cancel").status_code == 200
    aborted = wait_for(astronomer, running["id"], timeout=30)
    assert aborted["state"] == "CANCELED" and aborted["error"]["reason"] == "canceled on request while it ran"
    assert "logs/stderr.txt" in archive_members(astronomer, running["id"])  # its output so far is kept


# Pacifica: tar bundle with metadata.txt -> metadata kept -> step and percent -> admin fails a stuck job

METADATA = [
    {"destinationTable": "Transactions.submitter", "value": 10},
    {"destinationTable": "Transactions.instrument", "value": 54},
    {"destinationTable": "Files", "name": "results.csv", "subdir": "mywork/experiment", "size": 19},
]


def pacifica_bundle(project: Path) -> bytes:
    files = {
        "data/mywork/project/proposal.doc": b"proposal text\n",
        "data/mywork/experiment/results.csv": b"run,yield\n1,0.5\n2,0.7\n",
        "data/mywork/experiment/terrain.csv": (project / VALLEY).read_bytes(),
        "metadata.txt": json.dumps(METADATA).encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pacifica_bundle_progress_and_an_admin_failing_a_stuck_job(
    make_user: UserFactory, admin: httpx.Client, project: Path
) -> None:
    uploader = make_user()
    bundle = upload(uploader, "mybundle.tar", pacifica_bundle(project))
    answer = uploader.post("/v1/datasets", json={"file_id": bundle["id"], "name": "proposal-1234"})
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["kind"] == "tar" and dataset["metadata"] == {"entries": METADATA}
    assert uploader.get(dataset["url"]).json()["metadata"] == {"entries": METADATA}

    # Step and percent, as Pacifica's task and task_percent, on the job and in its events.
    job = submitted(uploader, {"app": "tabulate", "inputs": {"control": {"dataset": dataset["id"]}}})
    events = read_stream(uploader, f"/v1/jobs/{job['id']}/events")
    steps = [(e["data"]["data"]["percent"], e["data"]["data"]["step"]) for e in events if e["event"] == "progress"]
    reported = [
        (50, "summarised data/mywork/experiment/results.csv (1/2)"),
        (100, "summarised data/mywork/experiment/terrain.csv (2/2)"),
    ]
    # Only the last report of a tick is kept: the first may fall in the same tick as the last.
    assert steps in (reported, reported[1:])
    shown = uploader.get(job["url"]).json()
    assert shown["state"] == "SUCCEEDED"
    assert (shown["progress"]["percent"], shown["progress"]["step"]) == steps[-1]

    # A job that stops progressing is failed by an admin, with a reason kept in its history.
    terrain = {"dataset": dataset["id"], "path": "data/mywork/experiment/terrain.csv"}
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": terrain}, "timeout_seconds": 120}
    stuck = submitted(uploader, body | {"name": "ingest files"})
    deadline = time.monotonic() + 30
    while (progress := uploader.get(stuck["url"]).json()["progress"]) is None:
        assert time.monotonic() < deadline, "the job never reported progress"
        time.sleep(0.2)
    assert progress["step"].startswith("routing step ") and 0 < progress["percent"] < 100
    reason = "stuck in ingest files; failed by administrator"
    answer = admin.post(f"/v1/jobs/{stuck['id']}/state", json={"state": "FAILED", "reason": reason})
    assert answer.status_code == 200, answer.text
    failed = wait_for(uploader, stuck["id"])
    assert failed["state"] == "FAILED" and failed["progress"]["percent"] < 100
    admin_name = admin.get("/v1/me").json()["username"]
    assert [(c["from"], c["to"], c["by"], c["reason"]) for c in failed["history"]] == [
        ("RUNNING", "FAILED", admin_name, reason)
    ]
    deadline = time.monotonic() + 30
    while processes_mentioning(stuck["id"]):
        assert time.monotonic() < deadline, "the stuck app kept running"
        time.sleep(0.2)

    # Whoever follows the job sees the forced end, and its logs so far are packaged.
    events = read_stream(uploader, f"/v1/jobs/{stuck['id']}/events")
    last_state = [e["data"]["data"] for e in events if e["event"] == "state"][-1]
    assert last_state == {"state": "FAILED", "exit_code": None, "reason": reason, "forced_by": admin_name}
    assert b"routing step" in archive_members(uploader, stuck["id"])["logs/stdout.txt"]


# OpenQuake: running and past jobs, outputs, stop a running job, cluster info


def test_openquake_lists_running_and_past_jobs_outputs_stops_one_and_shows_the_cluster(
    make_user: UserFactory, project: Path, stack: Stack
) -> None:
    platform = make_user()
    grid = upload(platform, "valley.csv", (project / VALLEY).read_bytes())
    quick = {"app": "flood", "params": {"steps": 5}, "inputs": {"elevation": grid["id"]}}
    past = wait_for(platform, submitted(platform, quick)["id"])
    assert past["state"] == "SUCCEEDED"
    busy, waiting = queued_behind_busy_slots(platform, lambda user: long_flood(user, project))
    running = {job["id"] for job in busy}

    # Lists: currently running, waiting, past; each item carries its metadata and the URL of the job.
    assert ids(platform, state="RUNNING") == running
    assert ids(platform, state="QUEUED") == {waiting["id"]}
    assert ids(platform, state=ENDED) == {past["id"]}
    assert ids(platform, state="QUEUED,RUNNING", app="flood") == running | {waiting["id"]}
    item = platform.get("/v1/jobs", params={"state": ENDED}).json()["items"][0]
    assert item["url"].endswith(f"/v1/jobs/{past['id']}") and item["app"] == "flood"

    # A past job's outputs, and their export.
    outputs = {o["path"]: o for o in platform.get(item["url"]).json()["outputs"]}
    assert set(outputs) == {"depth.csv", "max_depth.csv", "summary.json", "flood_map.png"}
    exported = archive_members(platform, past["id"])
    assert hashlib.sha256(exported["outputs/summary.json"]).hexdigest() == outputs["summary.json"]["sha256"]

    # Cluster info: workers and their load, queue depth, the caller's jobs by app.
    jobs_queue = f"{stack.namespace}.jobs"
    deadline = time.monotonic() + 10
    while True:
        info = platform.get("/v1/cluster").json()
        runners = [w for w in info["workers"] if w["service"] == "quern-runner" and w["alive"]]
        # A runner with every slot busy takes no message: the waiting job's waits in RabbitMQ.
        if runners and sum(w["busy"] for w in runners) == 2 and info["queues"][jobs_queue]["messages"] >= 1:
            break
        assert time.monotonic() < deadline, f"never two busy slots and a message waiting: {info}"
        time.sleep(0.2)
    by_app = {"flood": {"QUEUED": 1, "RUNNING": 2}}
    assert info["jobs"] == {
        "scope": "mine",
        "queued": 1,
        "running": 2,
        "by_app": by_app,
        "by_queue": {"default": by_app["flood"]},
    }

    # Stop a running job; the waiting one takes its slot, and is stopped too.
    stopped, other = busy
    assert platform.post(f"/v1/jobs/{stopped['id']}/cancel").json()["cancel_requested"]
    assert wait_for(platform, stopped["id"], timeout=30)["state"] == "CANCELED"
    assert wait_for_running(platform, waiting["id"])
    assert ids(platform, state="RUNNING") == {other["id"], waiting["id"]}
    for job in (other, waiting):
        platform.post(f"/v1/jobs/{job['id']}/cancel")
    for job in (other, waiting):
        assert wait_for(platform, job["id"], timeout=30)["state"] == "CANCELED"
    assert ids(platform, state="QUEUED,RUNNING") == set()
    assert ids(platform, state="CANCELED") == running | {waiting["id"]}


def wait_for_running(api: httpx.Client, job_id: str) -> bool:
    deadline = time.monotonic() + 30
    while api.get(f"/v1/jobs/{job_id}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline, "the waiting job never started"
        time.sleep(0.1)
    return True


def test_qdo_queue_batch_add_filter_pause_resume_retry_recover(make_user: UserFactory, stack: Stack) -> None:
    """QDO: a named queue of many tasks, added in one call, followed by state and exit code, and repaired."""
    user = make_user()
    queue = user.post("/v1/queues", json={"name": "sky-survey", "description": "one fit per tile"}).json()
    assert user.get("/v1/queues/sky-survey").json()["id"] == queue["id"]  # by name, as QDO addresses queues
    assert user.post("/v1/queues/sky-survey/pause").json()["paused"] is True
    table = user.post("/v1/files", params={"name": "tile.csv"}, content=b"x,y\n1,2\n2,4\n3,6\n").json()
    tasks = [
        {
            "app": "linfit",
            "params": {"x": "x", "y": "y" if i % 4 else "missing"},  # every fourth task fails
            "inputs": {"table": table["id"]},
            "queue": "sky-survey",
            "name": f"tile-{i:03d}",
        }
        for i in range(8)
    ]
    batch = user.post("/v1/jobs/batch", json={"jobs": tasks})
    assert batch.status_code == 201, batch.text
    assert user.get("/v1/queues/sky-survey").json()["counts"]["QUEUED"] == 8
    dispatcher_passed(user)  # paused: nothing starts
    assert ids(user, queue="sky-survey", state="QUEUED") == {item["id"] for item in batch.json()["items"]}

    user.post("/v1/queues/sky-survey/resume")
    for item in batch.json()["items"]:
        wait_for(user, item["id"])
    counts = user.get("/v1/queues/sky-survey").json()["counts"]
    assert counts["SUCCEEDED"] == 6 and counts["FAILED"] == 2
    failed = ids(user, queue="sky-survey", state="FAILED")
    assert ids(user, queue="sky-survey", exit_code="0") | failed == {item["id"] for item in batch.json()["items"]}
    codes = {user.get(f"/v1/jobs/{job_id}").json()["exit_code"] for job_id in failed}
    assert len(codes) == 1 and codes != {0}
    assert ids(user, queue="sky-survey", state="FAILED", exit_code=str(codes.pop())) == failed

    deadline = time.monotonic() + 30
    retried: list[str] = []
    while len(retried) < 2:  # jobs still being packaged are skipped: ask again
        retried += user.post("/v1/queues/sky-survey/retry").json()["retried"]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert set(retried) == failed
    for job_id in failed:
        assert wait_for(user, job_id)["history"][-1]["reason"] == "retried in queue sky-survey"

    user.post("/v1/queues/sky-survey/pause")
    stuck = submitted(user, tasks[1] | {"name": "tile-stuck"})
    orphan(stack, stuck["id"], worker="gone-host-1")  # its worker vanished mid-task
    assert user.post("/v1/queues/sky-survey/recover").json() == {"recovered": [stuck["id"]]}
    user.post("/v1/queues/sky-survey/resume")
    assert wait_for(user, stuck["id"])["state"] == "SUCCEEDED"
