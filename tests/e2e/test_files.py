"""The Files API over the real stack: form and presigned uploads, downloads, filters and deletion."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from devstack.stack import LOCAL_S3_KEY, LOCAL_S3_SECRET, Stack
from tests.conftest import MAX_UPLOAD_BYTES, UserFactory

pytestmark = pytest.mark.e2e
JSON = {"content-type": "application/json"}


def now() -> datetime:
    return datetime.now(UTC)


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


def test_download_answers_a_presigned_url_that_saves_under_the_files_name(api: httpx.Client, stack: Stack) -> None:
    data = os.urandom(1000)
    file = upload(api, "höhe grid.csv", data)
    link = api.get(f"/v1/files/{file['id']}/download").json()
    assert (link["size"], link["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert link["url"].startswith(f"{stack.s3_url}/") and datetime.fromisoformat(link["expires_at"]) > now()
    got = httpx.get(link["url"])
    assert got.content == data
    disposition = parse_qs(urlsplit(link["url"]).query)["response-content-disposition"][0]
    assert disposition == "attachment; filename=\"hohe grid.csv\"; filename*=UTF-8''h%C3%B6he%20grid.csv"


def test_download_redirect_is_a_302_to_the_bytes(api: httpx.Client) -> None:
    file = upload(api, "r.bin", b"redirected")
    response = api.get(f"/v1/files/{file['id']}/download", params={"redirect": "yes"})
    assert response.status_code == 302
    assert httpx.get(response.headers["location"]).content == b"redirected"
    problem(api.get(f"/v1/files/{file['id']}/download", params={"redirect": "maybe"}), 400)


def test_files_are_filtered_by_name_prefix_type_and_creation_time(make_user: UserFactory) -> None:
    user = make_user()
    first = upload(user, "run-1.csv", b"1")
    time.sleep(0.05)
    middle = now()
    time.sleep(0.05)
    second = user.post("/v1/files", params={"name": "run-2.json"}, content=b"{}", headers=JSON).json()
    third = upload(user, "other.csv", b"3")

    def names(**params: str) -> list[str]:
        response = user.get("/v1/files", params=params)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert names(name_prefix="run-") == [second["name"], first["name"]]
    assert names(name_prefix="run-1.") == [first["name"]]
    assert names(name_prefix=".*") == []  # a prefix, never a pattern
    assert names(content_type="application/json") == [second["name"]]
    assert names(created_after=middle.isoformat()) == [third["name"], second["name"]]
    assert names(created_before=middle.isoformat().replace("+00:00", "Z")) == [first["name"]]
    assert names(name_prefix="run-", created_after=middle.isoformat(), limit="1") == [second["name"]]


def test_bad_filter_values_are_400(api: httpx.Client) -> None:
    for params in ({"created_after": "yesterday"}, {"created_before": "2026-13-01"}, {"name_prefix": "x" * 300}):
        problem(api.get("/v1/files", params=params), 400)


def test_deleted_file_is_gone_from_s3_and_then_404(api: httpx.Client, stack: Stack, s3: Any) -> None:
    file = upload(api, "doomed.bin", b"bye")
    response = api.delete(f"/v1/files/{file['id']}")
    assert response.status_code == 204 and response.content == b""
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"files/{file['id']}").get("KeyCount") == 0
    problem(api.get(f"/v1/files/{file['id']}"), 404)
    problem(api.delete(f"/v1/files/{file['id']}"), 404)


def test_input_of_a_queued_or_running_job_cannot_be_deleted(api: httpx.Client, project: Path) -> None:
    grid = upload(api, "valley.csv", (project / "apps/flood/example/valley.csv").read_bytes())
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 3}
    job = api.post("/v1/jobs", json=body).json()
    assert job["id"] in problem(api.delete(f"/v1/files/{grid['id']}"), 409)["detail"]
    assert api.get(f"/v1/files/{grid['id']}").status_code == 200
    deadline = time.monotonic() + 60
    while api.get(f"/v1/jobs/{job['id']}").json()["state"] in {"QUEUED", "RUNNING"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.delete(f"/v1/files/{grid['id']}").status_code == 204


def test_another_users_files_are_404_on_download_and_delete(api: httpx.Client, make_user: UserFactory) -> None:
    file = upload(api, "mine.txt", b"private")
    other = make_user()
    problem(other.get(f"/v1/files/{file['id']}/download"), 404)
    problem(other.get(f"/v1/files/{file['id']}/download", params={"redirect": "1"}), 404)
    problem(other.delete(f"/v1/files/{file['id']}"), 404)
    assert other.get("/v1/files", params={"name_prefix": "mine"}).json()["items"] == []
    assert api.get(f"/v1/files/{file['id']}").status_code == 200
