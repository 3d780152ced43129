"""Paginated lists: ``?limit=N&cursor=OPAQUE``, answered with ``items``, ``next_cursor`` and ``next``."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import Field
from starlette.requests import Request

from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.endpoints import Param
from shared.errors import BadRequest
from shared.models import Record
from shared.store.database import Page

T = TypeVar("T", bound=Record)
Item = TypeVar("Item", bound=Out)
P = TypeVar("P", bound="PageOut[Any]")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_ID = re.compile(r"^[0-9a-z]{26}$")


PAGED = (
    Param("limit", "Items per page, 1-500 (default 50)", {"type": "integer", "minimum": 1, "maximum": 500}),
    Param("cursor", "The next_cursor of the previous page"),
)


@dataclass(frozen=True)
class PageRequest:
    """Where a list starts and how long it is."""

    limit: int
    after: str | None


def page_request(request: Request) -> PageRequest:
    """Read ``limit`` (1-500, default 50) and ``cursor``; 400 for anything else."""
    raw_limit = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    cursor = request.query_params.get("cursor")
    return PageRequest(int(raw_limit), None if cursor is None else decode_cursor(cursor))


def decode_cursor(cursor: str) -> str:
    """The id an opaque cursor continues after; 400 if it is not one ``encode_cursor`` made."""
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("the cursor is not one this service handed out") from None
    if not isinstance(after, str) or not _ID.match(after):
        raise BadRequest("the cursor is not one this service handed out")
    return after


def encode_cursor(after: str) -> str:
    """The opaque cursor that continues a list after ``after``."""
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


class PageOut(Out, Generic[Item]):
    """One page of a list; a list's answer model names its items' model: ``class KeyPage(PageOut[KeyOut])``."""

    next_cursor: str | None
    next: str | None = Field(description="the URL of the next page, null on the last")
    items: list[Item]


def paged(request: Request, page: Page[T], render: Callable[[T], Item], model: type[P]) -> P:
    """The page's answer: each item rendered, with the cursor and the full URL of the next page."""
    cursor = None if page.next_after is None else encode_cursor(page.next_after)
    next_url = None if cursor is None else str(request.url.include_query_params(cursor=cursor))
    return model(items=[render(item) for item in page.items], next_cursor=cursor, next=next_url)
