"""The errors quern raises, meaningful to callers of every service.

    AppError                an error of our own (500 if nothing more precise is known)
    ├── BadRequest          the request cannot be read at all (malformed JSON, bad query)
    ├── Unauthorized        no credentials were sent
    │   └── BadCredentials  credentials that are wrong, expired, revoked or of a disabled account
    ├── Forbidden           an admin-only action asked by a user (never used to hide resources)
    ├── Invalid             the request is readable but breaks the rules; carries every violation
    ├── NotFound            the resource does not exist (or is not yours to see)
    ├── Conflict            the resource is not in a state that allows this
    │   ├── Duplicate       a name or key that must be unique is taken
    │   └── NotYet          not yet: the same request can succeed later (carries retry_after)
    ├── Gone                the resource existed but its retention ran out: its data were deleted
    ├── TooLarge            the upload or bundle is larger than the configured maximum
    │   ├── StoredBytesQuota    the caller's files and datasets would exceed their stored-bytes quota
    │   └── BatchSizeQuota      a batch larger than the caller's batch-size quota
    ├── OverQuota           the caller has as many of something as their quota allows (carries retry_after)
    │   ├── QueuedJobsQuota     as many queued jobs as their quota allows
    │   ├── PendingUploadsQuota as many pending uploads as their quota allows
    │   └── EventStreamsQuota   as many event streams open on this gateway as their quota allows
    ├── TooManyLogins       failed logins from this address (to this account) came too fast (carries retry_after)
    └── Unavailable         a server we depend on (Mongo, S3, RabbitMQ) did not answer
        └── Busy            the gateway itself is at capacity for this work (carries retry_after)

Each class names its ``kind``, the stable last segment of its problem type URI
(``urn:quern:problem:<kind>``, listed in docs/problems.md), and its ``title``; a subclass
that callers must tell apart gets a kind of its own. Adapters translate driver exceptions
into these with ``raise X(...) from exc``; nothing above an adapter names a third-party
exception. The gateway maps each class to an HTTP status in one table
(``services/gateway/problems.py``); actors declare the permanent ones in ``throws=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Violation:
    """One broken rule, located by a JSON pointer into the request."""

    pointer: str
    detail: str


class AppError(Exception):
    """Something went wrong."""

    kind: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (type(self).__doc__ or "").strip()
        super().__init__(self.detail)


class BadRequest(AppError):
    """The request could not be read."""

    kind = "bad-request"
    title = "Bad request"


class Unauthorized(AppError):
    """Authentication is required: send a bearer token or an API key."""

    kind = "unauthorized"
    title = "Unauthorized"


class BadCredentials(Unauthorized):
    """The credentials are not valid."""

    kind = "bad-credentials"
    title = "Bad credentials"


class Forbidden(AppError):
    """Only an admin may do this."""

    kind = "forbidden"
    title = "Forbidden"


class Invalid(AppError):
    """The request breaks one or more rules."""

    kind = "invalid"
    title = "Invalid request"

    def __init__(self, detail: str | None = None, violations: list[Violation] | None = None) -> None:
        super().__init__(detail)
        self.violations = violations or []


class NotFound(AppError):
    """No such resource."""

    kind = "not-found"
    title = "Not found"


class Conflict(AppError):
    """The resource is not in a state that allows this."""

    kind = "conflict"
    title = "Conflict"


class Duplicate(Conflict):
    """That name or key is taken."""

    kind = "duplicate"
    title = "Already taken"


class NotYet(Conflict):
    """Not yet: ask again later."""

    kind = "not-yet"
    title = "Not yet"

    def __init__(self, detail: str | None = None, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Gone(AppError):
    """Its retention ran out: the data were deleted for good."""

    kind = "gone"
    title = "Gone"


class TooLarge(AppError):
    """The upload is larger than this service accepts."""

    kind = "too-large"
    title = "Too large"


class StoredBytesQuota(TooLarge):
    """This would take your stored files and datasets past your quota; delete some first."""

    kind = "quota-stored-bytes"
    title = "Stored bytes quota reached"


class BatchSizeQuota(TooLarge):
    """The batch has more jobs than your quota allows in one batch; split it."""

    kind = "quota-batch-size"
    title = "Batch size quota reached"


class OverQuota(AppError):
    """You have as many of these as your quota allows; wait until some are done."""

    kind = "over-quota"
    title = "Quota reached"

    def __init__(self, detail: str | None = None, retry_after: int = 30) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class QueuedJobsQuota(OverQuota):
    """You have as many queued jobs as your quota allows; submit more once some have started."""

    kind = "quota-queued-jobs"
    title = "Queued jobs quota reached"


class PendingUploadsQuota(OverQuota):
    """You have as many pending uploads as your quota allows; complete or cancel some first."""

    kind = "quota-pending-uploads"
    title = "Pending uploads quota reached"


class EventStreamsQuota(OverQuota):
    """You have as many event streams open on this gateway as your quota allows; close one first."""

    kind = "quota-event-streams"
    title = "Event streams quota reached"


class TooManyLogins(AppError):
    """Too many failed logins; wait before trying again."""

    kind = "too-many-logins"
    title = "Too many logins"

    def __init__(self, detail: str | None = None, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(AppError):
    """A server quern depends on did not answer; try again later."""

    kind = "unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Busy(Unavailable):
    """The gateway is at capacity for this work; try again in a moment."""

    kind = "busy"
    title = "Busy"
