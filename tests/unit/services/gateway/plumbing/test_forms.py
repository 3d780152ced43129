"""The streaming form reader and the file a request sends (raw or as a form), fed by hand: no servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from services.gateway.plumbing.forms import FORM_SLACK, FilePart, SentFile, file_part, sent_file
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


def request(body: bytes, *, content_type: str | None, query: str = "", length: bool = True) -> Request:
    """A POST whose body arrives in two pieces; ``body=b"gone"`` is a client that goes away instead."""
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    if length:
        headers.append((b"content-length", str(len(body)).encode()))
    middle = len(body) // 2
    messages: list[Message] = [
        {"type": "http.request", "body": body[:middle], "more_body": True},
        {"type": "http.request", "body": body[middle:], "more_body": False},
    ]
    if body == b"gone":
        messages = [{"type": "http.request", "body": b"go", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/v1/files", "query_string": query.encode(), "headers": headers}
    return Request(scope, receive)


def sent(request: Request, *, max_bytes: int = 2**20) -> tuple[SentFile, bytes]:
    async def main() -> tuple[SentFile, bytes]:
        file = await sent_file(request, max_bytes=max_bytes)
        return file, b"".join([chunk async for chunk in file.chunks])

    return asyncio.run(main())


def test_a_raw_body_is_the_file_named_by_the_query_with_its_declared_size() -> None:
    file, data = sent(request(b"a,b\n1,2\n", content_type="Text/CSV; charset=utf-8", query="name=grid.csv"))
    assert (file.name, file.content_type, file.size, data) == ("grid.csv", "text/csv", 8, b"a,b\n1,2\n")


def test_a_raw_body_without_a_media_type_is_octet_stream_and_may_be_unnamed() -> None:
    file, _ = sent(request(b"abc", content_type=None, length=False))
    assert (file.name, file.content_type, file.size) == (None, "application/octet-stream", None)


def test_a_raw_body_over_the_limit_is_left_for_the_receiver_to_refuse() -> None:
    file, data = sent(request(b"x" * 100, content_type="application/octet-stream"), max_bytes=10)
    assert file.size == 100 and len(data) == 100


def test_a_form_file_is_named_by_the_query_first_then_by_its_filename() -> None:
    body = form(("file", "grid.csv", b"1,2"))
    file, data = sent(request(body, content_type=CONTENT_TYPE))
    assert (file.name, file.content_type, file.size, data) == ("grid.csv", "text/csv", None, b"1,2")
    renamed, _ = sent(request(body, content_type=CONTENT_TYPE, query="name=other.csv"))
    assert renamed.name == "other.csv"


def test_a_form_declared_larger_than_the_limit_and_its_slack_is_too_large() -> None:
    body = form(("file", "a.bin", b"x" * 100))
    sent(request(body, content_type=CONTENT_TYPE), max_bytes=len(body) - FORM_SLACK)
    with pytest.raises(TooLarge, match=f"limited to {len(body) - FORM_SLACK - 1} bytes"):
        sent(request(body, content_type=CONTENT_TYPE), max_bytes=len(body) - FORM_SLACK - 1)


def test_other_multipart_bodies_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="multipart/form-data"):
        sent(request(b"--b--\r\n", content_type="multipart/mixed; boundary=b", query="name=x"))


def test_a_client_that_goes_away_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="went away"):
        sent(request(b"gone", content_type="application/octet-stream", query="name=x"))
