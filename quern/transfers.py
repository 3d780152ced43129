"""Moving bytes: reading files for upload, PUTs to presigned S3 URLs, and checked downloads.

The API flow around them (announcing and completing uploads) is the files namespace's
(``quern._async.files``). Uploads read each part from disk when it is sent, so memory stays at
one chunk. Downloads are checked against the sha256 the API gave, and an archive is unpacked
only after every member was checked (``tarfile``'s ``data`` filter: no absolute paths, ``..``,
links or devices). Everything here blocks except ``aread_range``, the asyncio SDK's reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from quern.errors import IntegrityError, QuernError, Unreachable
from quern.models import Link

PathLike = str | os.PathLike[str]
ProgressCallback = Callable[[int, int | None], None]
"""Called with the bytes moved so far and the total (None when unknown)."""

CHUNK = 1024 * 1024
DIRECT_ABOVE = 32 * 1024 * 1024
TRANSFER_TIMEOUT = httpx.Timeout(60.0, read=300.0)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a local file, read a chunk at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class Meter:
    """Counts bytes for a progress callback; restarting (a retried request) rewinds to ``start``."""

    def __init__(self, total: int | None, progress: ProgressCallback | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)

    def rewind(self, to: int) -> None:
        self.done = to
        if self._progress is not None:
            self._progress(self.done, self.total)


def read_range(path: Path, start: int, size: int, meter: Meter) -> Iterator[bytes]:
    """``size`` bytes of ``path`` from ``start``, a chunk at a time, counted on ``meter``."""
    meter.rewind(start)
    with path.open("rb") as handle:
        handle.seek(start)
        left = size
        while left > 0 and (block := handle.read(min(CHUNK, left))):
            left -= len(block)
            meter.add(len(block))
            yield block


async def aread_range(path: Path, start: int, size: int, meter: Meter) -> AsyncIterator[bytes]:
    """``read_range`` as an asyncio request body: each chunk is read in a worker thread."""
    meter.rewind(start)
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        handle.seek(start)
        left = size
        while left > 0 and (block := await asyncio.to_thread(handle.read, min(CHUNK, left))):
            left -= len(block)
            meter.add(len(block))
            yield block
    finally:
        handle.close()


def on_loop(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` as a callback a worker thread may call: the call itself happens on the running event loop."""
    if progress is None:
        return None
    loop = asyncio.get_running_loop()

    def report(done: int, total: int | None) -> None:
        # Scheduled before the thread's result is, so every report has run once the await returns.
        loop.call_soon_threadsafe(progress, done, total)

    return report


def put_presigned(pending: dict[str, Any], source: Path, size: int, meter: Meter) -> dict[str, Any] | None:
    """PUT ``source`` to an announced upload's presigned URL(s) (blocking); the body its completion takes."""
    if pending.get("put") is not None:
        put = pending["put"]
        _put(put["url"], put["headers"], size, lambda: read_range(source, 0, size, meter))
        return None
    parts = []
    for part in pending["parts"]:
        start, length = (part["number"] - 1) * pending["part_size"], part["size"]
        etag = _put(part["url"], {}, length, lambda s=start, n=length: read_range(source, s, n, meter))  # type: ignore[misc]
        parts.append({"number": part["number"], "etag": etag})
    return {"parts": parts}


def _put(url: str, headers: dict[str, str], length: int, body: Callable[[], Iterator[bytes]]) -> str:
    """PUT to a presigned URL (three tries; S3 does not need our token); the ETag S3 answered."""
    failure: Exception | None = None
    for _ in range(3):
        try:
            # With its length given, a streamed body is not sent chunked, which S3 refuses (411) for a PUT.
            sized = {**headers, "Content-Length": str(length)}
            response = httpx.put(url, content=body(), headers=sized, timeout=TRANSFER_TIMEOUT)
            if response.status_code < 300:
                return str(response.headers.get("ETag", ""))
            failure = QuernError(f"S3 refused the upload: {response.status_code} {response.text[:300]}")
            if response.status_code < 500:
                break
        except httpx.TransportError as exc:
            failure = exc
    raise QuernError(f"uploading to S3 failed: {failure}") from failure


def download(link: Link, dest: PathLike, *, name: str, progress: ProgressCallback | None = None) -> Path:
    """Stream a presigned URL to ``dest`` (a directory: ``dest/name``), checking size and sha256.

    The bytes go to a temporary file beside the target, renamed only once they check out.
    """
    target = Path(dest)
    if target.is_dir():
        target = target / Path(name).name
    target.parent.mkdir(parents=True, exist_ok=True)
    meter, digest = Meter(link.size, progress), hashlib.sha256()
    fd, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle, httpx.stream("GET", link.url, timeout=TRANSFER_TIMEOUT) as response:
            if response.status_code >= 300:
                raise QuernError(f"S3 answered {response.status_code} for the download")
            for block in response.iter_bytes(CHUNK):
                handle.write(block)
                digest.update(block)
                meter.add(len(block))
        if link.size is not None and meter.done != link.size:
            raise IntegrityError(f"{name}: got {meter.done} bytes, expected {link.size}")
        if link.sha256 is not None and digest.hexdigest() != link.sha256:
            raise IntegrityError(f"{name}: sha256 {digest.hexdigest()} is not the expected {link.sha256}")
        os.replace(scratch, target)
    except httpx.TransportError as exc:
        Path(scratch).unlink(missing_ok=True)
        raise Unreachable(f"downloading {name} from S3 failed: {exc or type(exc).__name__}") from exc
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return target


def _check_member(member: tarfile.TarInfo, directory: Path) -> None:
    """Refuse anything but plain files and directories at relative paths that stay inside ``directory``."""
    parts = PurePosixPath(member.name).parts
    if not (member.isfile() or member.isdir()):
        raise IntegrityError(f"the archive holds {member.name!r}, which is not a file or directory")
    if member.name.startswith("/") or ".." in parts:
        raise IntegrityError(f"the archive holds {member.name!r}, which points outside its directory")
    tarfile.data_filter(member, str(directory))  # raises tarfile.FilterError for anything else it refuses


def fetch_archive(
    link: Link, dest: PathLike, *, name: str, extract: bool, progress: ProgressCallback | None = None
) -> Path:
    """Download an archive into the directory ``dest``; with ``extract``, unpack it there and delete the tar.gz."""
    directory = Path(dest)
    directory.mkdir(parents=True, exist_ok=True)
    archive = download(link, directory, name=name, progress=progress)
    if not extract:
        return archive
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:  # every member is checked before anything is written
                _check_member(member, directory)
            tar.extractall(directory, members=members, filter="data")
    finally:
        archive.unlink(missing_ok=True)
    return directory
