"""Bundles the tests upload for datasets: zip and tar archives built in memory, and a model folder to put in one."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

# A model folder whose control file names the tables beside it by relative path.
MODEL = {
    "model/run.tcf": b"! TUFLOW-style control file\nRead CSV == data/flows.csv\nRead CSV == data/levels.csv  ! h\n",
    "model/data/flows.csv": b"t,q\n0,1.5\n1,2.5\n2,3.5\n",
    "model/data/levels.csv": b"h\n3\n4\n5\n",
}


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def entry(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_of(*entries: tuple[tarfile.TarInfo, bytes], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return gzip.compress(buffer.getvalue(), mtime=0) if gz else buffer.getvalue()


def bundle(kind: str, files: dict[str, bytes]) -> tuple[str, bytes]:
    """A file name and the bytes of a bundle of ``kind`` holding ``files``."""
    if kind == "zip":
        return "bundle.zip", zip_of(files)
    return f"bundle.{kind}", tar_of(*(entry(name, data) for name, data in files.items()), gz=kind == "tar.gz")
