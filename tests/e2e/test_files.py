"""The Files API over the real stack: form and presigned uploads, downloads, filters and deletion."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import boto3
import httpx
import pytest

from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Stack
from tests.conftest import MAX_UPLOAD_BYTES, UserFactory

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


@pytest.fixture
def s3(stack: Stack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_S3_KEY,
        aws_secret_access_key=LOCAL_S3_SECRET,
    )


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def upload(api: httpx.Client, name: str, data: bytes, **params: str) -> dict[str, Any]:
    response = api.post("/v1/files", params={"name": name, **params}, content=data)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def stored(s3: Any, stack: Stack, file: dict[str, Any]) -> bytes:
    return s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read()  # type: ignore[no-any-return]


def test_form_upload_stores_the_file_part_under_its_filename(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = b"x,y\n1,2\n"
    response = api.post("/v1/files", files={"file": ("table.csv", data, "text/csv")}, data={"comment": "ignored"})
    assert response.status_code == 201, response.text
    file = response.json()
    assert (file["name"], file["size"], file["content_type"]) == ("table.csv", len(data), "text/csv")
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored(s3, stack, file) == data


def test_form_upload_takes_its_name_from_the_query_first(api: httpx.Client) -> None:
    response = api.post("/v1/files", params={"name": "renamed.bin"}, files={"file": ("orig.bin", b"abc")})
    assert response.json()["name"] == "renamed.bin"


def test_large_form_upload_is_streamed_into_s3_intact(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = os.urandom(20 * 2**20 + 4321)
    response = api.post("/v1/files", files={"file": ("noise.bin", data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["size"] == len(data) and file["sha256"] == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(stored(s3, stack, file)).hexdigest() == file["sha256"]


def test_form_without_a_file_part_is_400(api: httpx.Client) -> None:
    detail = problem(api.post("/v1/files", files={"other": ("x.csv", b"1")}), 400)["detail"]
    assert "'file'" in detail


def test_form_file_needs_a_safe_name(api: httpx.Client) -> None:
    problem(api.post("/v1/files", files={"file": ("../evil", b"1")}), 400)


def test_form_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = b"\0" * (MAX_UPLOAD_BYTES + 2**20)
    problem(api.post("/v1/files", files={"file": ("huge.bin", data)}), 413)
    assert s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
