"""Webhooks: signed JSON events POSTed to a job's callback URL, or to its owner's registered webhooks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.models.records import Record

WEBHOOK_URL_MAX = 2048


class WebhookTarget(BaseModel):
    """Where a job's terminal event (and, if asked for, its progress) is POSTed: an http(s) URL without credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(min_length=1, max_length=WEBHOOK_URL_MAX, description="http or https; no user:password@")
    progress: bool = Field(default=False, description="also POST job.progress events while the job runs")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_webhook_url(url)


def check_webhook_url(url: str) -> str:
    """``url`` itself if it is an absolute http(s) URL with a host and no credentials; ValueError otherwise."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    try:
        parts.port  # noqa: B018  # raises on a port out of range or not a number
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return url


class Webhook(Record):
    """A URL a user registered: it receives the terminal events of their jobs that carry no webhook of their own."""

    id: str
    owner: str
    url: str
    progress: bool = False
    created: datetime


class WebhookSecret(Record):
    """A user's signing secret (``id`` is the user's id); every delivery to them is signed with it."""

    id: str
    secret: str
    created: datetime


class DeliveryState(StrEnum):
    """Where a webhook delivery is: being tried, or done one way or the other."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryAttempt(Record):
    """One POST of a delivery: the receiver's status code, or why there was none."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class Delivery(Record):
    """One event for one receiver, with every attempt made to POST ``body`` (the exact JSON text sent)."""

    id: str
    owner: str
    job_id: str
    webhook: str | None = Field(default=None, description="the registered webhook; None: the job's own URL")
    url: str
    event: str
    body: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[DeliveryAttempt] = Field(default=[])
    created: datetime
    next_attempt: datetime | None = None
    lease: datetime | None = Field(default=None, description="a worker is POSTing it until then")
