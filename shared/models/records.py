"""What every stored record shares: frozen pydantic models whose ``id`` is Mongo's ``_id``, a ULID string.

ULIDs are unique, sortable by creation time, and readable in URLs and logs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from ulid import ULID


def new_id() -> str:
    """A fresh, time-sortable id."""
    return str(ULID()).lower()


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision BSON keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Record(BaseModel):
    """A stored document; ``id`` is Mongo's ``_id``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
