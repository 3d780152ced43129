"""Who may call quern: users and their API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.models.records import Record


class Role(StrEnum):
    """What a user may do: their own resources (user), or everyone's (admin)."""

    USER = "user"
    ADMIN = "admin"


QUOTAS = ("queued_jobs", "stored_bytes", "pending_uploads", "event_streams", "batch_jobs")


class QuotaOverrides(BaseModel):
    """A user's own quotas, set by an admin; None: the deployment's (``QUOTA_*``); 0: none at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    queued_jobs: int | None = Field(default=None, ge=0, description="jobs QUEUED at once")
    stored_bytes: int | None = Field(default=None, ge=0, description="bytes of uploaded files and datasets")
    pending_uploads: int | None = Field(default=None, ge=0, description="uploads announced and not completed")
    event_streams: int | None = Field(default=None, ge=0, description="event streams open at once, per gateway")
    batch_jobs: int | None = Field(default=None, ge=0, le=10_000, description="jobs in one batch")


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
    quotas: QuotaOverrides = QuotaOverrides()


class ApiKey(Record):
    """A credential for services: ``qk_<id>.<secret>``; only the secret's sha256 is kept."""

    id: str
    owner: str
    name: str
    secret_sha256: str
    created: datetime
    revoked: datetime | None = None
