"""Query parameters shared by several endpoints: yes/no flags, whole numbers and ISO 8601 timestamps, or 400."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import RedirectResponse

from services.gateway.plumbing.endpoints import Param
from shared.errors import BadRequest

_SPACED_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")
_INTEGER = re.compile(r"^-?\d{1,15}$")
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


REDIRECT = (Param("redirect", "1/true/yes: answer 302 to the URL instead", {"type": "string"}),)


def flag(request: Request, name: str) -> bool:
    """``?name=1/0``, ``true/false`` or ``yes/no``; absent is False."""
    value = request.query_params.get(name, "").lower()
    if value not in _FLAGS:
        raise BadRequest(f"{name} must be 1/0, true/false or yes/no")
    return _FLAGS[value]


def parse_timestamp(name: str, value: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is UTC."""
    # An unencoded '+' in a query string arrives as a space: "...T12:00:00 02:00" meant "+02:00".
    value = _SPACED_OFFSET.sub(r"+\1", value.strip(" ")) if "T" in value else value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or time, such as 2026-01-31T12:00:00Z") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def timestamp(request: Request, name: str) -> datetime | None:
    """``?name=`` as an ISO 8601 timestamp, if given."""
    value = request.query_params.get(name)
    return None if value is None else parse_timestamp(name, value)


def integer(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """``?name=N``, a whole number from ``low`` to ``high``; absent is ``default``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INTEGER.match(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


class Linked(Protocol):
    """An answer that carries a URL to follow."""

    @property
    def url(self) -> str: ...


L = TypeVar("L", bound=Linked)


def link_response(link: L, *, redirect: bool) -> L | RedirectResponse:
    """A presigned link's answer, or (``?redirect=1``) a 302 to its URL."""
    return RedirectResponse(link.url, status_code=302) if redirect else link
