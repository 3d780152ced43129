"""A file sent as a request's raw body or as its form's ``file`` part, streamed as it arrives: never spooled to disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from shared.errors import BadRequest, TooLarge

log = structlog.get_logger()
FILE_FIELD = "file"
FORM_SLACK = 1 * 2**20  # a form may carry this much besides the file: boundaries, headers, small fields
_MAX_HEADERS_BYTES = 16 * 1024  # all part headers together; a form is not a place to hide data


@dataclass
class _Events:
    """What the parser saw during one write, in order."""

    headers: dict[str, str] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0
    in_file: bool = False
    file_started: bool = False
    file_ended: bool = False
    data: list[bytes] = field(default_factory=list)
    ended: bool = False


@dataclass(frozen=True)
class FilePart:
    """The form's file: its name and type as the client gave them, and its bytes as they stream in."""

    filename: str | None
    content_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class SentFile:
    """A file a request sends: the name and type the client gives it, its declared size, and its bytes."""

    name: str | None  # ?name=, else (in a form) the file part's filename
    content_type: str
    size: int | None  # a raw body's Content-Length; a form tells no size of its file
    chunks: AsyncIterator[bytes]


def form_boundary(content_type: str) -> bytes:
    """The boundary of a multipart/form-data Content-Type, or 400."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise BadRequest("only multipart/form-data forms are accepted")
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 70:
        raise BadRequest("the form's Content-Type has no usable boundary")
    return boundary


def _callbacks(events: _Events) -> dict[str, object]:
    def on_part_begin() -> None:
        events.headers = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        events.header_field += data[start:end]
        events.header_bytes += end - start

    def on_header_value(data: bytes, start: int, end: int) -> None:
        events.header_value += data[start:end]
        events.header_bytes += end - start

    def on_header_end() -> None:
        name = events.header_field.decode("latin-1").lower()
        events.headers[name] = events.header_value.decode("latin-1")
        events.header_field.clear()
        events.header_value.clear()

    def on_headers_finished() -> None:
        disposition, options = parse_options_header(events.headers.get("content-disposition"))
        name = options.get(b"name", b"").decode("latin-1")
        if disposition == b"form-data" and name == FILE_FIELD and not events.file_started:
            events.in_file = events.file_started = True

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if events.in_file:
            events.data.append(data[start:end])

    def on_part_end() -> None:
        if events.in_file:
            events.in_file, events.file_ended = False, True

    def on_end() -> None:
        events.ended = True

    return {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }


async def file_part(body: AsyncIterator[bytes], *, content_type: str, max_bytes: int) -> FilePart:
    """Read the form up to the start of its ``file`` part; its bytes follow through ``chunks``.

    400 if the form is malformed or has no ``file`` part (found out as the body ends); 413 once
    more than ``max_bytes`` of body arrive.
    """
    events = _Events()
    parser = MultipartParser(form_boundary(content_type), _callbacks(events))  # type: ignore[arg-type]
    received = 0

    async def feed() -> bool:
        """Write the next body chunk to the parser; False once the body is over."""
        nonlocal received
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise TooLarge(f"uploads are limited to {max_bytes} bytes")
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise BadRequest(f"the form is malformed: {exc}") from None
            if events.header_bytes > _MAX_HEADERS_BYTES:
                raise BadRequest("the form's part headers are too large")
            return True
        return False

    while not events.file_started:
        if not await feed():
            break
    if not events.file_started:
        raise BadRequest(f"the form has no part named {FILE_FIELD!r}")
    headers = dict(events.headers)

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            for piece in events.data:
                yield piece
            events.data.clear()
            if events.file_ended:
                break
            if not await feed():
                raise BadRequest("the form ended inside its file part")
        while await feed():  # the fields after the file are read and dropped
            events.data.clear()
        if not events.ended:
            raise BadRequest("the form is malformed: it has no closing boundary")

    _, options = parse_options_header(headers.get("content-disposition"))
    raw_name = options.get(b"filename")
    try:
        filename = None if raw_name is None else raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the form's file name is not UTF-8") from None
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return FilePart(filename=filename, content_type=kind or "application/octet-stream", chunks=chunks())


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away before its end is a 400."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        log.info("upload_abandoned", name=request.query_params.get("name"))
        raise BadRequest("the client went away before the upload finished") from None


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def sent_file(request: Request, *, max_bytes: int) -> SentFile:
    """The file a request sends as its raw body or as a multipart/form-data ``file`` part; 400 for other multipart.

    A form is read up to its file part here, refused (413) once it is declared or found larger
    than ``max_bytes`` plus room for its other parts; a raw body is left for the caller to read.
    """
    header = request.headers.get("content-type", "application/octet-stream")
    media_type = header.split(";")[0].strip().lower()
    name = request.query_params.get("name")
    if media_type == "multipart/form-data":
        declared = _declared_length(request)
        if declared is not None and declared > max_bytes + FORM_SLACK:
            raise TooLarge(f"uploads are limited to {max_bytes} bytes")
        part = await file_part(_body(request), content_type=header, max_bytes=max_bytes + FORM_SLACK)
        return SentFile(name or part.filename, part.content_type, None, part.chunks)
    if media_type.startswith("multipart/"):
        raise BadRequest("send the file as the request body or as the 'file' part of a multipart/form-data form")
    return SentFile(name, media_type or "application/octet-stream", _declared_length(request), _body(request))
