"""The Files API through the in-process gateway: form and raw uploads, downloads, filters and deletion."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest

from devstack.stack import Stack
from tests.helpers.clients import VALLEY, ApiUserFactory, open_multipart_uploads, problem, upload
from tests.helpers.stacks import MAX_UPLOAD_BYTES

JSON = {"content-type": "application/json"}


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    """A plain user of the test stack."""
    return make_user()


def stored(s3: Any, stack: Stack, file: dict[str, Any]) -> bytes:
    return s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read()  # type: ignore[no-any-return]


def test_form_upload_stores_the_file_part_under_its_filename(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    data = b"x,y\n1,2\n"
    response = api.post("/v1/files", files={"file": ("table.csv", data, "text/csv")}, data={"comment": "ignored"})
    assert response.status_code == 201, response.text
    file = response.json()
    assert (file["name"], file["size"], file["content_type"]) == ("table.csv", len(data), "text/csv")
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored(s3, stack, file) == data


def test_form_upload_takes_its_name_from_the_query_first(api: httpx2.Client) -> None:
    response = api.post("/v1/files", params={"name": "renamed.bin"}, files={"file": ("orig.bin", b"abc")})
    assert response.json()["name"] == "renamed.bin"


def test_large_form_upload_is_streamed_into_s3_intact(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    data = os.urandom(20 * 2**20 + 4321)
    response = api.post("/v1/files", files={"file": ("noise.bin", data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["size"] == len(data) and file["sha256"] == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(stored(s3, stack, file)).hexdigest() == file["sha256"]


def test_form_without_a_file_part_is_400(api: httpx2.Client) -> None:
    detail = problem(api.post("/v1/files", files={"other": ("x.csv", b"1")}), 400)["detail"]
    assert "'file'" in detail


def test_form_file_needs_a_safe_name(api: httpx2.Client) -> None:
    problem(api.post("/v1/files", files={"file": ("../evil", b"1")}), 400)


def test_form_file_without_a_filename_needs_the_name_parameter(api: httpx2.Client) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--b--\r\n'
    headers = {"content-type": "multipart/form-data; boundary=b"}
    assert "name" in problem(api.post("/v1/files", content=body, headers=headers), 400)["detail"]
    named = api.post("/v1/files", params={"name": "given.txt"}, content=body, headers=headers)
    assert named.status_code == 201 and named.json()["name"] == "given.txt" and named.json()["size"] == 3


def test_other_multipart_bodies_are_400(api: httpx2.Client) -> None:
    headers = {"content-type": "multipart/mixed; boundary=b"}
    problem(api.post("/v1/files", params={"name": "x"}, content=b"--b--\r\n", headers=headers), 400)


def test_form_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    data = b"\0" * (MAX_UPLOAD_BYTES + 2**20)
    before = open_multipart_uploads(s3, stack.bucket)
    problem(api.post("/v1/files", files={"file": ("huge.bin", data)}), 413)
    assert open_multipart_uploads(s3, stack.bucket) <= before


def test_download_answers_a_presigned_url_that_saves_under_the_files_name(api: httpx2.Client, stack: Stack) -> None:
    data = os.urandom(1000)
    file = upload(api, "höhe grid.csv", data)
    link = api.get(f"/v1/files/{file['id']}/download").json()
    assert (link["size"], link["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert link["url"].startswith(f"{stack.s3_url}/") and datetime.fromisoformat(link["expires_at"]) > now()
    got = httpx.get(link["url"])
    assert got.content == data
    disposition = parse_qs(urlsplit(link["url"]).query)["response-content-disposition"][0]
    assert disposition == "attachment; filename=\"hohe grid.csv\"; filename*=UTF-8''h%C3%B6he%20grid.csv"


def test_download_redirect_is_a_302_to_the_bytes(api: httpx2.Client) -> None:
    file = upload(api, "r.bin", b"redirected")
    response = api.get(f"/v1/files/{file['id']}/download", params={"redirect": "yes"})
    assert response.status_code == 302
    assert httpx.get(response.headers["location"]).content == b"redirected"
    problem(api.get(f"/v1/files/{file['id']}/download", params={"redirect": "maybe"}), 400)


def test_files_are_filtered_by_name_prefix_type_and_creation_time(make_user: ApiUserFactory) -> None:
    user = make_user()
    first = upload(user, "run-1.csv", b"1")
    time.sleep(0.05)  # the clock moves on between the timestamps compared (Mongo keeps milliseconds)
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


def test_bad_filter_values_are_400(api: httpx2.Client) -> None:
    for params in ({"created_after": "yesterday"}, {"created_before": "2026-13-01"}, {"name_prefix": "x" * 300}):
        problem(api.get("/v1/files", params=params), 400)


def test_deleted_file_is_gone_from_s3_and_then_404(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    file = upload(api, "doomed.bin", b"bye")
    response = api.delete(f"/v1/files/{file['id']}")
    assert response.status_code == 204 and response.content == b""
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"files/{file['id']}").get("KeyCount") == 0
    problem(api.get(f"/v1/files/{file['id']}"), 404)
    problem(api.delete(f"/v1/files/{file['id']}"), 404)


def test_input_of_a_queued_or_running_job_cannot_be_deleted(api: httpx2.Client, project: Path) -> None:
    grid = upload(api, "valley.csv", (project / VALLEY).read_bytes())
    body = {"app": "flood", "params": {"steps": 100000}, "inputs": {"elevation": grid["id"]}, "timeout_seconds": 3}
    job = api.post("/v1/jobs", json=body).json()
    assert job["id"] in problem(api.delete(f"/v1/files/{grid['id']}"), 409, "not-yet")["detail"]
    assert api.get(f"/v1/files/{grid['id']}").status_code == 200
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200  # no runner here: it ends when canceled
    deadline = time.monotonic() + 60
    while api.get(f"/v1/jobs/{job['id']}").json()["state"] in {"QUEUED", "RUNNING"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.delete(f"/v1/files/{grid['id']}").status_code == 204


def test_another_users_files_are_404_on_download_and_delete(api: httpx2.Client, make_user: ApiUserFactory) -> None:
    file = upload(api, "mine.txt", b"private")
    other = make_user()
    problem(other.get(f"/v1/files/{file['id']}/download"), 404)
    problem(other.get(f"/v1/files/{file['id']}/download", params={"redirect": "1"}), 404)
    problem(other.delete(f"/v1/files/{file['id']}"), 404)
    assert other.get("/v1/files", params={"name_prefix": "mine"}).json()["items"] == []
    assert api.get(f"/v1/files/{file['id']}").status_code == 200


def test_large_upload_is_streamed_into_s3_intact(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    data = os.urandom(3 * 5 * 2**20 + 12345)  # three full 5 MiB parts and a short last one
    file = upload(api, "noise.bin", data)
    assert file["size"] == len(data)
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    stored = s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == file["sha256"]
    assert api.get(f"/v1/files/{file['id']}").json()["sha256"] == file["sha256"]


def test_upload_needs_a_safe_name(api: httpx2.Client) -> None:
    problem(api.post("/v1/files", content=b"x"), 400)
    problem(api.post("/v1/files", params={"name": "../etc/passwd"}, content=b"x"), 400)
