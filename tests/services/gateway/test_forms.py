"""The streaming form reader, fed by hand: no servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.gateway.plumbing.forms import FilePart, file_part
from shared.errors import BadRequest, TooLarge

BOUNDARY = "quern-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: text/csv\r\n"
        body += b"\r\n" + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes, *, size: int = 7, max_bytes: int = 2**20) -> tuple[FilePart, bytes]:
    async def main() -> tuple[FilePart, bytes]:
        part = await file_part(pieces(data, size), content_type=CONTENT_TYPE, max_bytes=max_bytes)
        return part, b"".join([chunk async for chunk in part.chunks])

    return asyncio.run(main())


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_file_part_bytes_come_through_whatever_the_chunking(size: int) -> None:
    data = bytes(range(256)) * 20 + b"\r\n--not-the-boundary\r\n"
    part, received = read(form(("note", None, b"hello"), ("file", "grid.csv", data), ("x", None, b"y")), size=size)
    assert received == data
    assert part.filename == "grid.csv" and part.content_type == "text/csv"


def test_utf8_file_names_are_kept() -> None:
    part, _ = read(form(("file", "höhe.csv", b"1")))
    assert part.filename == "höhe.csv"


def test_form_without_a_file_part_is_bad_request() -> None:
    with pytest.raises(BadRequest, match="no part named 'file'"):
        read(form(("other", "x.csv", b"1,2")))


def test_truncated_form_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        read(form(("file", "a.bin", b"x" * 100))[:-20])


def test_form_past_the_limit_is_too_large() -> None:
    with pytest.raises(TooLarge):
        read(form(("file", "a.bin", b"x" * 1000)), max_bytes=500)


def test_other_content_types_are_refused() -> None:
    async def main() -> None:
        await file_part(pieces(b"", 1), content_type="multipart/mixed; boundary=x", max_bytes=10)

    with pytest.raises(BadRequest):
        asyncio.run(main())
