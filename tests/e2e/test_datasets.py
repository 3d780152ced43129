"""Datasets as job inputs over the real stack: the tabulate app reads a model folder staged from S3."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import UserFactory, run_key, wait_for, wait_for_archive
from tests.helpers.datasets import MODEL, new_dataset, object_bytes


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    return make_user()


def test_model_folder_dataset_runs_as_a_job_input_with_relative_references(
    api: httpx.Client, s3: Any, stack: Stack
) -> None:
    dataset = new_dataset(api, MODEL)
    value = {"dataset": dataset["id"], "path": "model/run.tcf"}
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": value}})
    assert response.status_code == 201, response.text
    assert response.json()["inputs"] == {"control": value}
    job = wait_for(api, response.json()["id"])
    assert job["state"] == "SUCCEEDED", job["error"]
    assert {output["path"] for output in job["outputs"]} == {"summary.json", "summary.csv"}
    summary = json.loads(object_bytes(s3, stack, run_key(s3, stack, job["id"], "/outputs/summary.json")))
    assert summary["control"] == "run.tcf"
    assert summary["tables"]["data/flows.csv"]["columns"]["q"]["mean"] == 2.5
    assert summary["tables"]["data/levels.csv"]["rows"] == 3
    archive = httpx.get(wait_for_archive(api, job["id"])["url"])
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        manifest = json.loads(tar.extractfile(f"{job['id']}/manifest.json").read())  # type: ignore[union-attr]
    assert manifest["inputs"] == {"control": value}


def test_whole_dataset_input_is_staged_as_a_directory(api: httpx.Client, s3: Any, stack: Stack) -> None:
    dataset = new_dataset(api, MODEL, kind="tar.gz")
    response = api.post("/v1/jobs", json={"app": "tabulate", "inputs": {"control": {"dataset": dataset["id"]}}})
    assert response.status_code == 201, response.text
    job = wait_for(api, response.json()["id"])
    assert job["state"] == "SUCCEEDED", job["error"]
    summary = json.loads(object_bytes(s3, stack, run_key(s3, stack, job["id"], "/outputs/summary.json")))
    assert sorted(summary["tables"]) == ["model/data/flows.csv", "model/data/levels.csv"]
