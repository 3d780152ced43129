"""Archives and retention: a job's packaged archive and selections, lost packagings asked again, and expiry.

A packager claims a job's packaging with a lease (``packaging_lease``, a time) taken only when
unset or lapsed, moves it on while the archive builds, and attaches the archive only while it
still holds it: a redelivered or duplicated message never builds the same archive at once.
Selective archives are ``selections.<digest>`` on a job, asked for by the gateway and filled by the
results worker. Ended jobs whose time is up lose their S3 objects; the sweeper claims each before
deleting, and a job that expired gets no archive any more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING

from shared.models import Archive, Job, Selection, utcnow
from shared.store.database import Database, Document, translated, unset_or_before
from shared.store.jobs import transition


def _unpackaged(job_id: str, finished: datetime | None) -> Document:
    """Matches the job while the run that ended at ``finished`` has no archive and no sweeper expires it."""
    return {"_id": job_id, "archive": None, "finished": finished, "expired": None, "expiry_lease": None}


class ArchiveStore:
    """The jobs collection as the packager and the retention sweeper see it."""

    def __init__(self, database: Database) -> None:
        self._jobs = database.collection("jobs")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            # The retention sweeper's scans: ended jobs not yet expired, by when they expire or ended.
            await self._jobs.create_index([("expired", ASCENDING), ("expires", ASCENDING)])
            await self._jobs.create_index([("expired", ASCENDING), ("finished", ASCENDING)])

    async def claim_packaging(self, job_id: str, *, finished: datetime | None, until: datetime) -> Job | None:
        """Take the right to package the run that ended at ``finished`` until ``until``, if no packager holds it.

        None if another packager's lease has not lapsed, or the job is packaged, expired or ran again since.
        ``until`` tells this packager's lease from another's.
        """
        match = _unpackaged(job_id, finished) | {"packaging_lease": unset_or_before(utcnow())}
        return await transition(self._jobs, match, {"packaging_lease": until})

    async def extend_packaging(self, job_id: str, *, lease: datetime, until: datetime) -> bool:
        """Move this packager's lease on to ``until``; False if it is not this packager's any more."""
        with translated(f"job {job_id}"):
            result = await self._jobs.update_one(
                {"_id": job_id, "packaging_lease": lease}, {"$set": {"packaging_lease": until}}
            )
        return bool(result.modified_count)

    async def release_packaging(self, job_id: str, *, lease: datetime) -> None:
        """Give up this packager's lease, so the next message need not wait for it to lapse."""
        with translated(f"job {job_id}"):
            await self._jobs.update_one({"_id": job_id, "packaging_lease": lease}, {"$set": {"packaging_lease": None}})

    async def set_archive(
        self, job_id: str, archive: Archive, *, finished: datetime | None, lease: datetime
    ) -> Job | None:
        """Attach the archive of the run that ended at ``finished`` and release the packager's ``lease``.

        None if the lease is not this packager's any more, an archive is attached already, or the job
        was run again (retried) or expired since: that archive is then of an old run, or unwanted.
        """
        match = _unpackaged(job_id, finished) | {"packaging_lease": lease}
        return await transition(self._jobs, match, {"archive": archive.model_dump(), "packaging_lease": None})

    async def request_selection(self, job: Job, digest: str, selection: Selection, *, resend_before: datetime) -> bool:
        """Record that ``selection`` is wanted; True if this caller won the right to enqueue its packaging.

        False if it is packaged already, or was asked for after ``resend_before`` (a packager is on it),
        or the job ran again since ``job`` was read.
        """
        field = f"selections.{digest}"
        # Not asked for yet (no archive, no request), or asked for before ``resend_before`` and still unpackaged.
        match: Document = {
            "_id": job.id,
            "finished": job.finished,
            f"{field}.archive": None,
            f"{field}.requested": unset_or_before(resend_before),
        }
        return await transition(self._jobs, match, {field: selection.model_dump()}) is not None

    async def release_selection(self, job_id: str, digest: str, *, requested: datetime) -> None:
        """Forget a request whose packaging could not be enqueued, so the next caller tries again."""
        field = f"selections.{digest}"
        with translated(f"job {job_id}"):
            await self._jobs.update_one(
                {"_id": job_id, f"{field}.requested": requested, f"{field}.archive": None}, {"$unset": {field: ""}}
            )

    async def set_selection_archive(
        self, job_id: str, digest: str, archive: Archive, *, finished: datetime | None
    ) -> Job | None:
        """Attach a selection's archive unless one is, or the job ran again since ``finished``, or it expired."""
        field = f"selections.{digest}"
        return await transition(
            self._jobs,
            {
                "_id": job_id,
                "finished": finished,
                "expired": None,
                "expiry_lease": None,
                f"{field}.requested": {"$exists": True},
                f"{field}.archive": None,
            },
            {f"{field}.archive": archive.model_dump()},
        )

    async def stamp_expiry(self, *, limit: int) -> int:
        """Set ``expires`` (its end plus its retention) on up to ``limit`` ended jobs that have none yet."""
        match = {
            "expired": None,
            "expires": None,
            "finished": {"$ne": None},
            "retention_seconds": {"$ne": None},
        }
        stamped = 0
        with translated("stamp expiry"):
            docs = await self._jobs.find(match, {"finished": 1, "retention_seconds": 1}).limit(limit).to_list(None)
            for doc in docs:
                expires = doc["finished"] + timedelta(seconds=doc["retention_seconds"])
                result = await self._jobs.update_one(
                    {"_id": doc["_id"], "finished": doc["finished"], "expires": None}, {"$set": {"expires": expires}}
                )
                stamped += result.modified_count
        return stamped

    async def due_for_expiry(self, *, now: datetime, packaged_by: datetime, limit: int) -> list[str]:
        """Ids of up to ``limit`` jobs whose ``expires`` is past and that nothing will write to any more.

        A job that ran is taken once it is packaged, or once it ended before ``packaged_by`` (its
        packaging is then lost or done for): deleting earlier would race with the packager.
        """
        due = {"expired": None, "expires": {"$lt": now}}
        # Three queries rather than an $or (see shared.store.database), merged by when each expired.
        ways = ({"archive": {"$ne": None}}, {"started": None}, {"finished": {"$lt": packaged_by}})
        found: dict[str, datetime] = {}
        with translated("jobs due for expiry"):
            for way in ways:
                cursor = self._jobs.find(due | way, {"expires": 1}).sort("expires", ASCENDING).limit(limit)
                found |= {doc["_id"]: doc["expires"] for doc in await cursor.to_list(None)}
        return sorted(found, key=lambda job_id: (found[job_id], job_id))[:limit]

    async def claim_expiry(self, job_id: str, *, until: datetime) -> Job | None:
        """Take the right to delete an expired job's objects until ``until``; None if another sweeper holds it."""
        now = utcnow()
        return await transition(
            self._jobs,
            {
                "_id": job_id,
                "expired": None,
                "expires": {"$lt": now},
                "expiry_lease": unset_or_before(now),
            },
            {"expiry_lease": until},
        )

    async def mark_expired(self, job_id: str, *, lease: datetime) -> Job | None:
        """Record that the job's objects are deleted; None if this sweeper's lease was lost meanwhile."""
        return await transition(
            self._jobs,
            {"_id": job_id, "expiry_lease": lease, "expired": None},
            {"expired": utcnow(), "expiry_lease": None},
        )

    async def unpackaged_jobs(self, *, finished_before: datetime, resent_before: datetime, limit: int) -> list[str]:
        """Ids of jobs that ran and ended before then without an archive, not asked again since ``resent_before``.

        A job a packager holds (a long archive still building) is not lost: it is left out.
        """
        match = {
            "expired": None,
            "finished": {"$lt": finished_before},
            "started": {"$ne": None},
            "archive": None,
            "packaging_resent": unset_or_before(resent_before),
            "packaging_lease": unset_or_before(utcnow()),
        }
        with translated("unpackaged jobs"):
            docs = await self._jobs.find(match, {"_id": 1}).sort("finished", ASCENDING).limit(limit).to_list(None)
        return [doc["_id"] for doc in docs]

    async def claim_packaging_resend(self, job_id: str, *, resent_before: datetime) -> bool:
        """Take the right to ask for this job's packaging again; False if another sweeper did since then."""
        match = {
            "_id": job_id,
            "archive": None,
            "expired": None,
            "packaging_resent": unset_or_before(resent_before),
        }
        with translated(f"job {job_id}"):
            result = await self._jobs.update_one(match, {"$set": {"packaging_resent": utcnow()}})
        return bool(result.modified_count)

    async def release_packaging_resend(self, job_id: str) -> None:
        """Forget a claim whose message could not be sent, so the next pass asks again."""
        with translated(f"job {job_id}"):
            await self._jobs.update_one({"_id": job_id, "archive": None}, {"$set": {"packaging_resent": None}})
