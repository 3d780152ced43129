"""Presigned uploads through the in-process gateway: announced, PUT straight to S3, verified on completion."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pymongo
import pytest

from devstack.stack import Stack
from tests.helpers.clients import ApiUserFactory, announce, problem, put
from tests.helpers.stacks import MAX_UPLOAD_BYTES, SINGLE_PUT_MAX_BYTES


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    """A plain user of the test stack."""
    return make_user()


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


def test_a_put_after_completion_cannot_change_the_file(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"verified")
    put(upload, b"verified")
    file = api.post(upload["complete"]).json()
    put(upload, b"swapped!")  # the URL is valid until the upload would have expired
    link = api.get(f"/v1/files/{file['id']}/download").json()
    assert httpx.get(link["url"]).content == b"verified"
    assert s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read() == b"verified"


def test_completing_twice_is_409_naming_the_file(api: httpx2.Client) -> None:
    upload = announce(api, b"once")
    put(upload, b"once")
    assert api.post(upload["complete"]).status_code == 201
    assert f"file {upload['id']}" in problem(api.post(upload["complete"]), 409, "conflict")["detail"]


def test_completing_before_the_bytes_arrive_is_409_and_can_be_retried(api: httpx2.Client) -> None:
    upload = announce(api, b"later")
    assert "PUT" in problem(api.post(upload["complete"]), 409, "not-yet")["detail"]
    put(upload, b"later")
    assert api.post(upload["complete"]).status_code == 201


def test_sha256_mismatch_is_422_and_the_object_is_deleted(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"the bytes announced")
    put(upload, b"the bytes truly put")
    details = problem(api.post(upload["complete"]), 422)
    assert "sha256" in details["detail"] and details["errors"][0]["pointer"] == "/sha256"
    assert nothing_stored(s3, stack, upload["id"])
    problem(api.get(upload["url"]), 404)
    problem(api.get(f"/v1/files/{upload['id']}"), 404)


def test_size_mismatch_is_422_and_the_object_is_deleted(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"12345")
    put(upload, b"123456")
    assert problem(api.post(upload["complete"]), 422)["errors"][0]["pointer"] == "/size"
    assert nothing_stored(s3, stack, upload["id"])


def test_presigned_multipart_upload_is_assembled_and_verified(api: httpx2.Client, stack: Stack, s3: Any) -> None:
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


def test_multipart_completion_with_a_wrong_etag_is_422_and_can_be_retried(api: httpx2.Client) -> None:
    data = os.urandom(SINGLE_PUT_MAX_BYTES + 1)
    upload = announce(api, data)
    parts = put_parts(upload, data)
    wrong = [parts[0], {"number": 2, "etag": '"0123456789abcdef0123456789abcdef"'}]
    assert problem(api.post(upload["complete"], json={"parts": wrong}), 422)["errors"][0]["pointer"] == "/parts"
    assert api.post(upload["complete"], json={"parts": parts}).status_code == 201


def test_cancelled_upload_leaves_no_parts_behind(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"\0" * (SINGLE_PUT_MAX_BYTES + 1))
    httpx.put(upload["parts"][0]["url"], content=b"\0" * upload["part_size"])
    assert api.delete(upload["url"]).status_code == 204
    uploads = s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == f"files/{upload['id']}"] == []
    problem(api.post(upload["complete"]), 404)


def test_expired_upload_cannot_be_completed(api: httpx2.Client, stack: Stack, s3: Any) -> None:
    upload = announce(api, b"too late")
    put(upload, b"too late")
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        client[stack.database]["uploads"].update_one(
            {"_id": upload["id"]}, {"$set": {"expires": datetime.now(UTC) - timedelta(seconds=1)}}
        )
    assert "expired" in problem(api.post(upload["complete"]), 409, "conflict")["detail"]
    assert nothing_stored(s3, stack, upload["id"])
    problem(api.post(upload["complete"]), 404)


def test_a_completion_that_died_after_recording_the_file_is_finished_and_the_bytes_kept(
    api: httpx2.Client, stack: Stack, s3: Any
) -> None:
    upload = announce(api, b"recorded")
    put(upload, b"recorded")
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(stack.env()["MONGO_URL"], tz_aware=True) as client:
        uploads: pymongo.collection.Collection[dict[str, Any]] = client[stack.database]["uploads"]
        pending = uploads.find_one({"_id": upload["id"]})
        assert pending is not None
        file = api.post(upload["complete"]).json()
        # What a completion that recorded the file, then died before forgetting the upload, leaves
        # (its record released, as a failed call to record it does), found again once it expired.
        uploads.insert_one(pending | {"completing": None, "expires": datetime.now(UTC) - timedelta(seconds=1)})
    put(upload, b"swapped!")  # the PUT URL still works: a retry must not hash or copy these bytes
    again = api.post(upload["complete"])
    assert again.status_code == 201 and again.json()["id"] == file["id"], again.text
    assert s3.get_object(Bucket=stack.bucket, Key=f"files/{file['id']}")["Body"].read() == b"recorded"
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"uploads/{upload['id']}").get("KeyCount") == 0
    problem(api.get(upload["url"]), 404)


def test_announced_size_over_the_limit_is_413(api: httpx2.Client) -> None:
    body = {"name": "huge.bin", "size": MAX_UPLOAD_BYTES + 1, "sha256": "0" * 64}
    problem(api.post("/v1/uploads", json=body), 413)


def test_malformed_announcements_are_422_with_pointers(api: httpx2.Client) -> None:
    body = {"name": "../x", "size": -1, "sha256": "nope", "content_type": "not a type"}
    errors = problem(api.post("/v1/uploads", json=body), 422)["errors"]
    assert {error["pointer"] for error in errors} == {"/size", "/sha256", "/content_type"}
    body = {"name": "../x", "size": 1, "sha256": "0" * 64}
    assert problem(api.post("/v1/uploads", json=body), 422)["errors"][0]["pointer"] == "/name"


def test_another_users_uploads_are_404_everywhere(api: httpx2.Client, make_user: ApiUserFactory) -> None:
    upload = announce(api, b"mine")
    put(upload, b"mine")
    other = make_user()
    problem(other.get(upload["url"]), 404)
    problem(other.post(upload["complete"]), 404)
    problem(other.delete(upload["url"]), 404)
    assert api.post(upload["complete"]).status_code == 201
    problem(other.post(upload["complete"]), 404)
