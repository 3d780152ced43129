"""Request bodies streamed over a real socket in chunks: limits are found while reading, and nothing is left behind.

These need the gateway as an HTTP server: starlette's TestClient hands the app a whole body at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from tests.helpers.clients import UserFactory, open_multipart_uploads, problem
from tests.helpers.stacks import MAX_UPLOAD_BYTES


@pytest.fixture(scope="module")
def api(make_user: UserFactory) -> httpx.Client:
    """A plain user of the test stack."""
    return make_user()


def test_oversized_job_request_is_413_without_reading_it_all(api: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"app": "flood", "params": {"pad": "'
        for _ in range(64):
            yield b"x" * 2**20

    problem(api.post("/v1/jobs", content=body(), headers={"content-type": "application/json"}), 413)


def test_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: httpx.Client, stack: Stack, s3: Any) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(MAX_UPLOAD_BYTES // 2**20 + 2):
            yield b"\0" * 2**20

    before = open_multipart_uploads(s3, stack.bucket)
    response = api.post("/v1/files", params={"name": "huge.bin"}, content=body())
    problem(response, 413, "too-large")
    assert open_multipart_uploads(s3, stack.bucket) <= before


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
