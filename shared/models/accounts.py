"""Who may call quern: users and their API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from shared.models.records import Record


class Role(StrEnum):
    """What a user may do: their own resources (user), or everyone's (admin)."""

    USER = "user"
    ADMIN = "admin"


class User(Record):
    """Someone who may log in; ``password_hash`` is an argon2 hash."""

    id: str
    username: str
    password_hash: str
    role: Role = Role.USER
    created: datetime
    disabled: bool = False
    max_running: int | None = Field(
        default=None, description="jobs running or dispatched at once; None: USER_MAX_RUNNING"
    )
    # Login tokens issued and UI sessions opened before this are refused (a password change, a disable,
    # "log out everywhere"); None: every unexpired one is good.
    tokens_valid_after: datetime | None = None


class ApiKey(Record):
    """A credential for services: ``qk_<id>.<secret>``; only the secret's sha256 is kept."""

    id: str
    owner: str
    name: str
    secret_sha256: str
    created: datetime
    revoked: datetime | None = None
