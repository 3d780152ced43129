"""The SDK's downloads and archive unpacking, against real S3."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import Stack
from quern.errors import IntegrityError
from quern.models import Link
from quern.transfers import download, fetch_archive


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
