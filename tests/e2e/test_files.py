"""The Files API over the real stack: form and presigned uploads, downloads, filters and deletion."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pymongo
import pytest

from devstack.stack import Stack
from tests.conftest import MAX_UPLOAD_BYTES, SINGLE_PUT_MAX_BYTES, UserFactory, open_multipart_uploads, problem, upload
from tests.e2e.test_walking_skeleton import wait_for

pytestmark = pytest.mark.e2e
JSON = {"content-type": "application/json"}


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


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


def test_form_file_without_a_filename_needs_the_name_parameter(api: httpx.Client) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--b--\r\n'
    headers = {"content-type": "multipart/form-data; boundary=b"}
    assert "name" in problem(api.post("/v1/files", content=body, headers=headers), 400)["detail"]
    named = api.post("/v1/files", params={"name": "given.txt"}, content=body, headers=headers)
    assert named.status_code == 201 and named.json()["name"] == "given.txt" and named.json()["size"] == 3


def test_other_multipart_bodies_are_400(api: httpx.Client) -> None:
    headers = {"content-type": "multipart/mixed; boundary=b"}
    problem(api.post("/v1/files", params={"name": "x"}, content=b"--b--\r\n", headers=headers), 400)


def test_streamed_form_over_the_limit_is_413_and_leaves_nothing_behind(
    api: httpx.Client, stack: Stack, s3: Any
) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the limit is found while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="huge.bin"\r\n\r\n'
        for _ in range(MAX_UPLOAD_BYTES // 2**20 + 2):
            yield b"\0" * 2**20
        yield b"\r\n--b--\r\n"

    before = open_multipart_uploads(s3, stack.bucket)
    response = api.post("/v1/files", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    problem(response, 413)
    assert open_multipart_uploads(s3, stack.bucket) <= before


def test_form_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = b"\0" * (MAX_UPLOAD_BYTES + 2**20)
    before = open_multipart_uploads(s3, stack.bucket)
    problem(api.post("/v1/files", files={"file": ("huge.bin", data)}), 413)
    assert open_multipart_uploads(s3, stack.bucket) <= before


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
    assert job["id"] in problem(api.delete(f"/v1/files/{grid['id']}"), 409, "not-yet")["detail"]
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


def announce(api: httpx.Client, data: bytes, name: str = "big.bin", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}
    response = api.post("/v1/uploads", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == response.json()["url"]
    return response.json()  # type: ignore[no-any-return]


def put(upload: dict[str, Any], data: bytes) -> None:
    response = httpx.put(upload["put"]["url"], content=data, headers=upload["put"]["headers"])
    assert response.status_code == 200, response.text


def put_parts(upload: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    done, offset = [], 0
    for part in upload["parts"]:
        response = httpx.put(part["url"], content=data[offset : offset + part["size"]])
        assert response.status_code == 200, response.text
        done.append({"number": part["number"], "etag": response.headers["etag"]})
        offset += part["size"]
    assert offset == len(data)
    return done


def nothing_stored(s3: Any, stack: Stack, upload_id: str) -> bool:
    keys = [f"files/{upload_id}", f"uploads/{upload_id}"]
    return all(s3.list_objects_v2(Bucket=stack.bucket, Prefix=key).get("KeyCount") == 0 for key in keys)


def test_presigned_put_upload_becomes_a_file_usable_as_a_job_input(
    api: httpx.Client, stack: Stack, project: Path, s3: Any
) -> None:
    data = (project / "apps/flood/example/valley.csv").read_bytes()
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
    job = api.post("/v1/jobs", json={"app": "flood", "params": {"steps": 5}, "inputs": {"elevation": file["id"]}})
    assert wait_for(api, job.json()["id"])["state"] == "SUCCEEDED"


def test_a_put_after_completion_cannot_change_the_file(api: httpx.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"verified")
    put(upload, b"verified")
    file = api.post(upload["complete"]).json()
    put(upload, b"swapped!")  # the URL is valid until the upload would have expired
    link = api.get(f"/v1/files/{file['id']}/download").json()
    assert httpx.get(link["url"]).content == b"verified"
    assert s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read() == b"verified"


def test_completing_twice_is_409_naming_the_file(api: httpx.Client) -> None:
    upload = announce(api, b"once")
    put(upload, b"once")
    assert api.post(upload["complete"]).status_code == 201
    assert f"file {upload['id']}" in problem(api.post(upload["complete"]), 409, "conflict")["detail"]


def test_completing_before_the_bytes_arrive_is_409_and_can_be_retried(api: httpx.Client) -> None:
    upload = announce(api, b"later")
    assert "PUT" in problem(api.post(upload["complete"]), 409, "not-yet")["detail"]
    put(upload, b"later")
    assert api.post(upload["complete"]).status_code == 201


def test_sha256_mismatch_is_422_and_the_object_is_deleted(api: httpx.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"the bytes announced")
    put(upload, b"the bytes truly put")
    details = problem(api.post(upload["complete"]), 422)
    assert "sha256" in details["detail"] and details["errors"][0]["pointer"] == "/sha256"
    assert nothing_stored(s3, stack, upload["id"])
    problem(api.get(upload["url"]), 404)
    problem(api.get(f"/v1/files/{upload['id']}"), 404)


def test_size_mismatch_is_422_and_the_object_is_deleted(api: httpx.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"12345")
    put(upload, b"123456")
    assert problem(api.post(upload["complete"]), 422)["errors"][0]["pointer"] == "/size"
    assert nothing_stored(s3, stack, upload["id"])


def test_presigned_multipart_upload_is_assembled_and_verified(api: httpx.Client, stack: Stack, s3: Any) -> None:
    data = os.urandom(SINGLE_PUT_MAX_BYTES + 3 * 2**20)  # 11 MiB: three parts of at most 5 MiB
    upload = announce(api, data)
    assert upload["put"] is None and upload["part_size"] == 5 * 2**20
    assert [part["size"] for part in upload["parts"]] == [5 * 2**20, 5 * 2**20, 2**20]
    query = parse_qs(urlsplit(upload["parts"][1]["url"]).query)
    assert query["partNumber"] == ["2"] and query["uploadId"] and 86_000 < int(query["X-Amz-Expires"][0]) <= 86_400
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    parts = put_parts(upload, data)
    problem(api.post(upload["complete"]), 422)  # a multipart upload names its parts
    problem(api.post(upload["complete"], json={"parts": parts[::-1]}), 422)
    response = api.post(upload["complete"], json={"parts": parts})
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3.get_object(Bucket=stack.bucket, Key=f"files/{upload['id']}")["Body"].read() == data


def test_multipart_completion_with_a_wrong_etag_is_422_and_can_be_retried(api: httpx.Client) -> None:
    data = os.urandom(SINGLE_PUT_MAX_BYTES + 1)
    upload = announce(api, data)
    parts = put_parts(upload, data)
    wrong = [parts[0], {"number": 2, "etag": '"0123456789abcdef0123456789abcdef"'}]
    assert problem(api.post(upload["complete"], json={"parts": wrong}), 422)["errors"][0]["pointer"] == "/parts"
    assert api.post(upload["complete"], json={"parts": parts}).status_code == 201


def test_cancelled_upload_leaves_no_parts_behind(api: httpx.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"\0" * (SINGLE_PUT_MAX_BYTES + 1))
    httpx.put(upload["parts"][0]["url"], content=b"\0" * upload["part_size"])
    assert api.delete(upload["url"]).status_code == 204
    uploads = s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == f"files/{upload['id']}"] == []
    problem(api.post(upload["complete"]), 404)


def test_expired_upload_cannot_be_completed(api: httpx.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"too late")
    put(upload, b"too late")
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        client[stack.database]["uploads"].update_one(
            {"_id": upload["id"]}, {"$set": {"expires": now() - timedelta(seconds=1)}}
        )
    assert "expired" in problem(api.post(upload["complete"]), 409, "conflict")["detail"]
    assert nothing_stored(s3, stack, upload["id"])
    problem(api.post(upload["complete"]), 404)


def test_announced_size_over_the_limit_is_413(api: httpx.Client) -> None:
    body = {"name": "huge.bin", "size": MAX_UPLOAD_BYTES + 1, "sha256": "0" * 64}
    problem(api.post("/v1/uploads", json=body), 413)


def test_malformed_announcements_are_422_with_pointers(api: httpx.Client) -> None:
    body = {"name": "../x", "size": -1, "sha256": "nope", "content_type": "not a type"}
    errors = problem(api.post("/v1/uploads", json=body), 422)["errors"]
    assert {error["pointer"] for error in errors} == {"/size", "/sha256", "/content_type"}
    body = {"name": "../x", "size": 1, "sha256": "0" * 64}
    assert problem(api.post("/v1/uploads", json=body), 422)["errors"][0]["pointer"] == "/name"


def test_another_users_uploads_are_404_everywhere(api: httpx.Client, make_user: UserFactory) -> None:
    upload = announce(api, b"mine")
    put(upload, b"mine")
    other = make_user()
    problem(other.get(upload["url"]), 404)
    problem(other.post(upload["complete"]), 404)
    problem(other.delete(upload["url"]), 404)
    assert api.post(upload["complete"]).status_code == 201
    problem(other.post(upload["complete"]), 404)
