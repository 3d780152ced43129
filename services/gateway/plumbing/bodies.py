"""Request bodies: read with a size cap, parsed as strict JSON into a model, every violation pointed at."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shared.errors import BadRequest, Invalid, TooLarge, Violation

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) to read more than ``limit`` bytes into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"this request body is limited to {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"this request body is limited to {limit} bytes")
    return bytes(body)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_model(raw: bytes, model: type[M]) -> M:
    """Strict JSON (no NaN or Infinity) into ``model``: 400 if unreadable, 422 listing every violation."""
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        violations = [Violation("".join(f"/{part}" for part in e["loc"]), e["msg"]) for e in exc.errors()]
        raise Invalid("the request is malformed", violations) from None


async def read_model(request: Request, model: type[M], *, limit: int = 64 * 1024) -> M:
    """Read and parse a JSON body in one step."""
    return parse_model(await read_body(request, limit), model)
