"""Datasets the tests make: zip and tar bundles built in memory, uploaded and turned into datasets."""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
import zipfile
from typing import Any

from devstack.stack import Stack
from tests.helpers.clients import Client, Response, upload

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


def unique(prefix: str = "ds") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def post_dataset(api: Client, filename: str, data: bytes, **fields: Any) -> Response:
    """Upload a bundle and ask for a dataset of it under a fresh name (unless ``fields`` name it)."""
    file = upload(api, filename, data)
    return api.post("/v1/datasets", json={"file_id": file["id"], "name": unique(), **fields})


def new_dataset(api: Client, files: dict[str, bytes], kind: str = "zip", **fields: Any) -> dict[str, Any]:
    """A dataset of a ``kind`` bundle holding ``files``."""
    response = post_dataset(api, *bundle(kind, files), **fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_dataset(user: Client, name: str) -> str:
    """A small dataset owned by ``user``; returns its id."""
    bundle_file = upload(user, f"{name}.zip", zip_of({"data/a.csv": b"x,y\n1,2\n"}))
    answer = user.post("/v1/datasets", json={"file_id": bundle_file["id"], "name": name})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def object_bytes(s3: Any, stack: Stack, key: str) -> bytes:
    return s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
