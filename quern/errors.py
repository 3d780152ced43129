"""What the SDK raises: catch a problem's kind (``except NotYet``), not its status and type strings.

QuernError
├── ApiError                the service answered with a problem document (RFC 9457)
│   ├── BadRequest          400  bad-request: the request cannot be read
│   ├── Unauthorized        401  unauthorized: no credentials were sent
│   │   └── BadCredentials  401  bad-credentials: wrong, expired or revoked credentials
│   ├── Forbidden           403  forbidden: for admins only
│   ├── NotFound            404  not-found: no such resource (or not yours)
│   ├── MethodNotAllowed    405  method-not-allowed
│   ├── Conflict            409  conflict: the resource's state rules this out for good
│   │   ├── Duplicate       409  duplicate: a name or key that must be unique is taken
│   │   └── NotYet          409  not-yet: the same request can succeed later (``retry_after``)
│   ├── Gone                410  gone: the job's retention ran out
│   ├── TooLarge            413  too-large
│   │   ├── StoredBytesQuota    413  quota-stored-bytes: the caller's stored bytes would pass their quota
│   │   └── BatchSizeQuota      413  quota-batch-size: more jobs in a batch than the caller's quota
│   ├── Invalid             422  invalid: every broken rule is in ``errors``
│   ├── TooManyRequests     429  (no kind of quern's own: a proxy or rate limiter said it)
│   │   ├── OverQuota       429  over-quota: a quota reached (never retried by the SDK)
│   │   │   ├── QueuedJobsQuota     429  quota-queued-jobs
│   │   │   ├── PendingUploadsQuota 429  quota-pending-uploads
│   │   │   └── EventStreamsQuota   429  quota-event-streams (per gateway)
│   │   └── TooManyLogins   429  too-many-logins: failed logins came too fast (``retry_after``)
│   ├── InternalError       500  internal-error
│   └── Unavailable         503  unavailable: a server quern depends on did not answer
│       └── Busy            503  busy: the gateway is at capacity for this (``retry_after``)
├── Unreachable             the service could not be reached, even after the retries
└── IntegrityError          what arrived is not what the service said it was

An answer's ``type`` ``urn:quern:problem:<kind>`` picks the class (docs/problems.md lists the
kinds); a type the SDK does not know, or an answer that is no problem document, falls back on
its status, and a status with no class of its own is a plain ``ApiError``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

TYPE_PREFIX = "urn:quern:problem:"


class QuernError(Exception):
    """Something went wrong talking to quern."""


class ApiError(QuernError):
    """The service refused or failed the request; the problem document's fields are attributes."""

    kind: ClassVar[str | None] = None  # the last segment of the problem type, for the classes that have one

    def __init__(self, status: int, problem: dict[str, Any], *, retry_after: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.instance: str | None = problem.get("instance")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}".strip())

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error a 4xx/5xx answer stands for, of its kind's class (a body that is not JSON becomes the detail)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"title": response.reason_phrase, "detail": response.text[:500]}
        of_kind = error_class(response.status_code, body.get("type"))
        return of_kind(response.status_code, body, retry_after=_retry_after(response))

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [f"  {error.get('pointer') or '(body)'}: {error.get('detail', '')}" for error in self.errors]
        return "\n".join(lines)


class BadRequest(ApiError):
    """The request cannot be read: malformed JSON or form, a bad query parameter, cursor or key."""

    kind = "bad-request"


class Unauthorized(ApiError):
    """No credentials were sent: log in or send an API key."""

    kind = "unauthorized"


class BadCredentials(Unauthorized):
    """The credentials are wrong, expired or revoked, or their account is disabled."""

    kind = "bad-credentials"


class Forbidden(ApiError):
    """Only an admin may do this."""

    kind = "forbidden"


class NotFound(ApiError):
    """No such resource, or not one of the caller's."""

    kind = "not-found"


class MethodNotAllowed(ApiError):
    """The URL exists, but not with this method."""

    kind = "method-not-allowed"


class Conflict(ApiError):
    """The resource is in a state that rules this out; sending it again will not help."""

    kind = "conflict"


class Duplicate(Conflict):
    """A name or key that must be unique is taken."""

    kind = "duplicate"


class NotYet(Conflict):
    """The same request can succeed later, after ``retry_after`` seconds."""

    kind = "not-yet"


class Gone(ApiError):
    """The job's retention ran out: its outputs, logs and archive were deleted."""

    kind = "gone"


class TooLarge(ApiError):
    """The upload, body or bundle is larger than the service accepts."""

    kind = "too-large"


class Invalid(ApiError):
    """The request breaks rules; ``errors`` holds each with its JSON pointer."""

    kind = "invalid"


class TooManyRequests(ApiError):
    """Too many requests: something between the SDK and quern asks it to slow down."""


class StoredBytesQuota(TooLarge):
    """The caller's files and datasets would pass their stored-bytes quota: delete some first."""

    kind = "quota-stored-bytes"


class BatchSizeQuota(TooLarge):
    """The batch has more jobs than the caller's quota allows in one: split it."""

    kind = "quota-batch-size"


class OverQuota(TooManyRequests):
    """A quota of the caller's is reached: not retried, as it lasts until the caller frees some."""

    kind = "over-quota"


class QueuedJobsQuota(OverQuota):
    """The caller has as many queued jobs as their quota allows."""

    kind = "quota-queued-jobs"


class PendingUploadsQuota(OverQuota):
    """The caller has as many pending uploads as their quota allows."""

    kind = "quota-pending-uploads"


class EventStreamsQuota(OverQuota):
    """The caller has as many event streams open on that gateway as their quota allows."""

    kind = "quota-event-streams"


class TooManyLogins(TooManyRequests):
    """Failed logins from this address (or to this account from it) came too fast; wait ``retry_after`` seconds."""

    kind = "too-many-logins"


class InternalError(ApiError):
    """quern failed; the failure is logged under the answer's X-Request-ID."""

    kind = "internal-error"


class Unavailable(ApiError):
    """A server quern depends on did not answer; try again after ``retry_after`` seconds."""

    kind = "unavailable"


class Busy(Unavailable):
    """The gateway is at capacity for this work (checking passwords); try again after ``retry_after`` seconds."""

    kind = "busy"


KINDS: tuple[type[ApiError], ...] = (
    BadRequest,
    Unauthorized,
    BadCredentials,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Duplicate,
    NotYet,
    Gone,
    TooLarge,
    StoredBytesQuota,
    BatchSizeQuota,
    Invalid,
    OverQuota,
    QueuedJobsQuota,
    PendingUploadsQuota,
    EventStreamsQuota,
    TooManyLogins,
    InternalError,
    Unavailable,
    Busy,
)
BY_KIND: dict[str, type[ApiError]] = {cls.kind: cls for cls in KINDS if cls.kind is not None}
# The class an answer falls back on when its type is not one the SDK knows (a proxy's error page, say).
BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    413: TooLarge,
    422: Invalid,
    429: TooManyRequests,
    500: InternalError,
    503: Unavailable,
}


def error_class(status: int, problem_type: object) -> type[ApiError]:
    """The class of a problem: by its type's kind, else by its status, else ``ApiError``."""
    if isinstance(problem_type, str) and problem_type.startswith(TYPE_PREFIX):
        known = BY_KIND.get(problem_type.removeprefix(TYPE_PREFIX))
        if known is not None:
            return known
    return BY_STATUS.get(status, ApiError)


class Unreachable(QuernError):
    """No answer from the service: refused, reset or timed out."""


class IntegrityError(QuernError):
    """What arrived is not what the service said it was (size or sha256)."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: rare here; the default backoff applies
