"""Scenario: a runner cut off from Mongo, but not from S3, while its app runs.

The cut-off runner cannot renew its lease; the reaper runs the job again on another runner,
whose attempt is packaged. The cut-off run finishes its app and uploads its outputs under its own
run prefix, and once Mongo is back its finish is refused (the job's run token is no longer its
own) and its uploads are deleted. The app writes its working directory, so the packaged bytes
tell which runner's attempt they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from pymongo import MongoClient

from devstack.chaos.apps import archived_output
from devstack.chaos.runners import start, work_dir
from devstack.processes import Process, wait_until
from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Stack
from devstack.tcp_proxy import TcpProxy


@dataclass
class CutOff:
    """What the scenario saw: the job, whether the packaged output is the new attempt's, stale objects left."""

    job_id: str
    packaged_right: bool
    stale_objects: int


def cut_off_from_mongo(
    stack: Stack, api: httpx.Client, app: str, cut: Process, other: Process, proxy: TcpProxy
) -> CutOff:
    """Run a job on ``cut`` (its Mongo behind ``proxy``), cut the proxy mid-run, let ``other`` take over."""
    job_id = api.post("/v1/jobs", json={"app": app}).json()["id"]
    wait_until(
        lambda: (work_dir(cut) / job_id / "run").exists(), "the app to start on the runner to cut off", timeout=120
    )
    time.sleep(0.5)
    proxy.down()
    print(f"chaos: cut {cut.name} off from Mongo while job {job_id} ran", flush=True)
    start(other)

    def succeeded() -> bool:
        return bool(api.get(f"/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED")

    wait_until(succeeded, "the new attempt to succeed", timeout=120)
    proxy.up()
    wait_until(lambda: cut.logged("job_run_stale"), "the cut-off run's finish to be refused", timeout=120)
    job = api.get(f"/v1/jobs/{job_id}").json()
    expected = str(work_dir(other) / job_id / "run").encode()
    packaged = archived_output(api, job_id, "out.txt")
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(f"mongodb://127.0.0.1:{stack.ports.mongo}") as mongo:
        found: dict[str, Any] = mongo[stack.database]["jobs"].find_one({"_id": job_id}, {"run_token": 1}) or {}
    current = f"jobs/{job_id}/runs/{found.get('run_token')}/"
    s3 = boto3.client(
        "s3", endpoint_url=stack.s3_url, aws_access_key_id=LOCAL_S3_KEY, aws_secret_access_key=LOCAL_S3_SECRET
    )
    listing = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"jobs/{job_id}/runs/")
    stale = [item["Key"] for item in listing.get("Contents", []) if not item["Key"].startswith(current)]
    print(f"chaos: cut-off: attempt {job['attempt']} packaged {packaged!r}; stale objects {len(stale)}", flush=True)
    return CutOff(job_id=job_id, packaged_right=packaged == expected, stale_objects=len(stale))
