"""A presigned upload over the real stack: once completed, the runner stages it as a job's input."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import TINY, VALLEY, UserFactory, announce, problem, put, wait_for


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


def test_presigned_put_upload_becomes_a_file_usable_as_a_job_input(
    api: httpx.Client, stack: Stack, project: Path, s3: Any
) -> None:
    data = (project / VALLEY).read_bytes()
    upload = announce(api, data, name="valley.csv", content_type="text/csv")
    url = urlsplit(upload["put"]["url"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}" == stack.s3_url and url.path == f"/{stack.bucket}/uploads/{upload['id']}"
    assert 86_000 < int(query["X-Amz-Expires"][0]) <= 86_400  # until the upload expires, a day after it began
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) >= {"content-length", "content-type"}
    assert upload["put"]["headers"] == {"Content-Type": "text/csv"} and upload["parts"] is None
    put(upload, data)
    response = api.post(upload["complete"])
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["id"] == upload["id"] and file["sha256"] == hashlib.sha256(data).hexdigest()
    assert (file["name"], file["size"], file["content_type"]) == ("valley.csv", len(data), "text/csv")
    problem(api.get(upload["url"]), 404)
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"uploads/{upload['id']}").get("KeyCount") == 0
    assert s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read() == data
    job = api.post("/v1/jobs", json={"app": TINY, "inputs": {"data": file["id"]}})
    assert wait_for(api, job.json()["id"])["state"] == "SUCCEEDED"
