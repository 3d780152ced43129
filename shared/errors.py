"""The errors quern raises, meaningful to callers of every service.

    AppError
    ├── BadRequest      the request cannot be read at all (malformed JSON, bad query)
    ├── Unauthorized    no credentials, or credentials that are wrong, expired or revoked
    ├── Forbidden       an admin-only action asked by a user (never used to hide resources)
    ├── Invalid         the request is readable but breaks the rules; carries every violation
    ├── NotFound        the resource does not exist (or is not yours to see)
    ├── Conflict        the resource is not in a state that allows this yet
    ├── TooLarge        the upload is larger than the configured maximum
    └── Unavailable     a server we depend on (Mongo, S3, RabbitMQ) did not answer

Adapters translate driver exceptions into these with ``raise X(...) from exc``; nothing above
an adapter names a third-party exception. The gateway maps each class to an HTTP status in one
table (``services/gateway/problems.py``); actors declare the permanent ones in ``throws=``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One broken rule, located by a JSON pointer into the request."""

    pointer: str
    detail: str


class AppError(Exception):
    """Something went wrong."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (type(self).__doc__ or "").strip()
        super().__init__(self.detail)


class BadRequest(AppError):
    """The request could not be read."""


class Unauthorized(AppError):
    """Authentication is required: send a bearer token or an API key."""


class Forbidden(AppError):
    """Only an admin may do this."""


class Invalid(AppError):
    """The request breaks one or more rules."""

    def __init__(self, detail: str | None = None, violations: list[Violation] | None = None) -> None:
        super().__init__(detail)
        self.violations = violations or []


class NotFound(AppError):
    """No such resource."""


class Conflict(AppError):
    """The resource is not in a state that allows this."""

    def __init__(self, detail: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TooLarge(AppError):
    """The upload is larger than this service accepts."""


class Unavailable(AppError):
    """A server quern depends on did not answer; try again later."""

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
