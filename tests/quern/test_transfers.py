"""The SDK's downloads and archive unpacking against real S3, and its retry policy against a scripted server."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from quern.client import Client
from quern.errors import ApiError, Unreachable
from quern.models import Link
from quern.transfers import IntegrityError, download, fetch_archive
from quern.transport import Retries

FAST = Retries(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05)


def stored(s3: Any, stack: Stack, key: str, data: bytes, *, sha256: str | None = None) -> Link:
    """``data`` put in the test bucket, and a presigned link to it claiming ``sha256`` (the true one by default)."""
    s3.put_object(Bucket=stack.bucket, Key=key, Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": stack.bucket, "Key": key}, ExpiresIn=300)
    digest = sha256 or hashlib.sha256(data).hexdigest()
    return Link(url=url, expires_at=datetime.now(UTC) + timedelta(minutes=5), size=len(data), sha256=digest)


def test_a_download_whose_sha256_differs_raises_and_leaves_nothing(s3: Any, stack: Stack, tmp_path: Path) -> None:
    link = stored(s3, stack, "tests/sdk/corrupt.bin", b"abc" * 1000, sha256="0" * 64)
    with pytest.raises(IntegrityError, match="sha256"):
        download(link, tmp_path, name="corrupt.bin")
    assert list(tmp_path.iterdir()) == []


def test_a_download_reports_progress_up_to_the_size(s3: Any, stack: Stack, tmp_path: Path) -> None:
    data = bytes(range(256)) * 8192
    seen: list[tuple[int, int | None]] = []
    saved = download(stored(s3, stack, "tests/sdk/ok.bin", data), tmp_path, name="ok.bin", progress=_record(seen))
    assert saved.read_bytes() == data and seen[-1] == (len(data), len(data))


def _record(seen: list[tuple[int, int | None]]) -> Callable[[int, int | None], None]:
    return lambda done, total: seen.append((done, total))


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), link
    return info, data


@pytest.mark.parametrize(
    "member",
    [
        _member("job/../../escape.txt", data=b"x"),
        _member("/etc/evil", data=b"x"),
        _member("job/link", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("job/hard", tarfile.LNKTYPE, link="job/ok.txt"),
        _member("job/dev", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "device"],
)
def test_a_hostile_archive_is_not_unpacked(
    s3: Any, stack: Stack, tmp_path: Path, member: tuple[tarfile.TarInfo, bytes]
) -> None:
    data = _tar(_member("job/ok.txt", data=b"fine"), member)
    link = stored(s3, stack, "tests/sdk/hostile.tar.gz", data)
    target = tmp_path / "out"
    with pytest.raises((IntegrityError, tarfile.TarError)):
        fetch_archive(link, target, name="hostile.tar.gz", extract=True)
    assert list(target.rglob("*")) == []  # not even the harmless member, and the tar.gz is gone


def test_a_clean_archive_is_unpacked_and_the_tarball_removed(s3: Any, stack: Stack, tmp_path: Path) -> None:
    data = _tar(_member("job/outputs/a.csv", data=b"x,y\n"), _member("job/manifest.json", data=b"{}"))
    fetch_archive(stored(s3, stack, "tests/sdk/clean.tar.gz", data), tmp_path, name="j.tar.gz", extract=True)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "job/manifest.json",
        "job/outputs/a.csv",
    ]


def scripted(*answers: httpx.Response | type[Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A stand-in server answering each request with the next of ``answers`` (an exception type is raised)."""
    script, seen = list(answers), []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0)
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)  # type: ignore[call-arg]
        return answer

    return httpx.MockTransport(handle), seen


JOB = {"id": "j1", "app": "flood", "app_version": "1", "state": "QUEUED", "created": "2026-01-01T00:00:00Z"}


def test_503_and_429_are_retried_honouring_retry_after() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "0"}, json={"title": "Unavailable", "detail": "busy"})
    slow = httpx.Response(429, headers={"Retry-After": "0"}, json={"title": "Too Many Requests", "detail": "x"})
    transport, seen = scripted(busy, slow, httpx.Response(200, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client:
        assert client.jobs.get("j1").state == "QUEUED"
    assert len(seen) == 3


def test_a_submission_is_retried_after_a_lost_answer_under_one_idempotency_key() -> None:
    transport, seen = scripted(httpx.ReadTimeout, httpx.Response(201, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client:
        client.jobs.submit("flood")
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(seen) == 2 and len(keys) == 1


def test_a_post_without_an_idempotency_key_is_not_repeated_after_a_read_timeout() -> None:
    transport, seen = scripted(httpx.ReadTimeout, httpx.Response(200, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client, pytest.raises(Unreachable):
        client.jobs.cancel("j1")
    assert len(seen) == 1


def test_a_4xx_is_raised_at_once_with_the_problem_fields() -> None:
    problem = {
        "type": "urn:quern:problem:invalid",
        "title": "Invalid request",
        "status": 422,
        "detail": "bad",
        "instance": "/v1/jobs",
        "errors": [{"pointer": "/params/steps", "detail": "must be at least 1"}],
    }
    transport, seen = scripted(httpx.Response(422, json=problem))
    with Client("http://quern.test", transport=transport, retries=FAST) as client, pytest.raises(ApiError) as caught:
        client.jobs.submit("flood", params={"steps": 0})
    error = caught.value
    assert (error.status, error.type, error.instance) == (422, "urn:quern:problem:invalid", "/v1/jobs")
    assert error.errors[0]["pointer"] == "/params/steps" and "/params/steps" in str(error)
    assert len(seen) == 1
