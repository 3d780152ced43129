"""Retention: how long a job's outputs, logs and archive are kept once it ends, and the 410 once they are gone.

A job keeps its results for the ``retention_seconds`` it asked for, else its app's
``retention_seconds``, else ``RESULTS_RETENTION_DAYS`` (0: for ever). ``MAX_RETENTION_DAYS``
(0: no bound) caps all three: a job asking for more is refused (422), an app's or the
deployment's longer default is cut down to it. The results service's sweeper deletes what an
expired job owns in S3 and marks it ``expired``; the record stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.apps import AppSpec
from shared.errors import Gone, Invalid, Violation
from shared.models import Job, utcnow
from shared.settings import GatewaySettings

DAY = 24 * 3600


@dataclass(frozen=True)
class RetentionPolicy:
    """The deployment's default and maximum retention, in seconds (None: for ever, no bound)."""

    default_seconds: int | None = None
    max_seconds: int | None = None

    @classmethod
    def of(cls, settings: GatewaySettings) -> RetentionPolicy:
        """The policy ``RESULTS_RETENTION_DAYS`` and ``MAX_RETENTION_DAYS`` describe."""
        return cls(
            default_seconds=settings.results_retention_days * DAY or None,
            max_seconds=settings.max_retention_days * DAY or None,
        )

    def for_job(self, spec: AppSpec, requested: int | None) -> int | None:
        """The job's own ask (422 past the maximum), else its app's, else the default, capped at the maximum."""
        if requested is not None:
            if self.max_seconds is not None and requested > self.max_seconds:
                detail = f"must be at most {self.max_seconds} (MAX_RETENTION_DAYS)"
                raise Invalid(
                    f"results are kept at most {self.max_seconds} seconds", [Violation("/retention_seconds", detail)]
                )
            return requested
        chosen = spec.retention_seconds if spec.retention_seconds is not None else self.default_seconds
        if self.max_seconds is not None and (chosen is None or chosen > self.max_seconds):
            return self.max_seconds
        return chosen


KEEP_FOREVER = RetentionPolicy()


def require_not_expired(job: Job) -> None:
    """Gone (410) once the job's retention has run out, whether or not the sweeper has deleted its objects yet.

    Every route that hands out a job's stored results (archive, logs, outputs) calls this first.
    """
    if job.expired is not None:
        raise Gone(f"job {job.id}'s results were deleted at {job.expired.isoformat()}: its retention ran out")
    expiry = job.expiry
    if expiry is not None and expiry <= utcnow():
        raise Gone(f"job {job.id}'s results expired at {expiry.isoformat()} and are being deleted")
