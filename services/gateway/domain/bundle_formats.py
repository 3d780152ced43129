"""The archive formats a bundle may come in (zip, tar, tar.gz): told apart by their bytes, opened strictly.

What a bundle may hold is checked in ``bundles``; here is only how each format is read.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal, Self

from shared.errors import Invalid, Violation

Kind = Literal["zip", "tar", "tar.gz"]
EXTENSIONS: dict[Kind, tuple[str, ...]] = {"zip": (".zip",), "tar": (".tar",), "tar.gz": (".tar.gz", ".tgz")}
CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)
NOT_UTF8 = "the name is not valid UTF-8"


def refuse_file(detail: str) -> Invalid:
    """The refusal of the bundle file as a whole, pointed at ``/file``."""
    return Invalid(detail, [Violation("/file", detail)])


def corrupt(exc: Exception | str) -> Invalid:
    """The refusal of an archive that cannot be read to its end."""
    return refuse_file(f"the archive is truncated or corrupt: {exc}")


class _StrictTarInfo(tarfile.TarInfo):
    """Refuses the cut or garbled header that tarfile would quietly take for the end of the archive."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as exc:
            if buf == bytes(tarfile.BLOCKSIZE):
                raise  # the end-of-archive marker
            raise tarfile.ReadError(f"a header is cut short or garbled ({exc})") from exc


@contextmanager
def tar_stream(path: Path, kind: Kind) -> Iterator[io.BufferedIOBase]:
    """A tar's bytes: the file itself, or a tar.gz's as they are unzipped."""
    with path.open("rb") as raw:
        if kind == "tar":
            yield raw
        else:
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped


def open_tar(stream: io.BufferedIOBase) -> tarfile.TarFile:
    """A tar read front to back with strict headers; names that are not UTF-8 keep their bytes as surrogates."""
    return tarfile.open(fileobj=stream, mode="r:", tarinfo=_StrictTarInfo, encoding="utf-8", errors="surrogateescape")


def tar_data(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    """A reader over a regular tar member's bytes."""
    data = archive.extractfile(info)
    if data is None:
        raise ValueError(f"{info.name!r} is not a regular file")
    return data


def _is_tar_header(block: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def detect(path: Path) -> Kind:
    """Which format the file is, by its first bytes (a gzip's: once unzipped); Invalid if none of them."""
    with path.open("rb") as file:
        head = file.read(tarfile.BLOCKSIZE)
    if not head:
        raise refuse_file("the file is empty")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as unzipped:
                head = unzipped.read(tarfile.BLOCKSIZE)
        except CORRUPT as exc:
            raise corrupt(exc) from exc
        if _is_tar_header(head):
            return "tar.gz"
    elif head == bytes(tarfile.BLOCKSIZE) or _is_tar_header(head):
        return "tar"
    raise refuse_file("not a zip or tar archive")


def zip_name(info: zipfile.ZipInfo) -> tuple[str, str | None]:
    """A zip member's name as written, and NOT_UTF8 when it cannot be read as UTF-8."""
    name = info.orig_filename
    if info.flag_bits & 0x800 or name.isascii():
        return name, None
    # Info-ZIP and others write UTF-8 names without setting the flag; zipfile read them as cp437.
    raw = name.encode("cp437")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), NOT_UTF8
