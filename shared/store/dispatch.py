"""Dispatch: QUEUED jobs wait here until they may start; the dispatcher leases them and sends them to RabbitMQ.

Also what the dispatcher settles on each pass: dependencies (``waiting_on``) and the RUNNING jobs
whose runner stopped renewing their lease (orphans).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

from shared.models import Job, JobState, utcnow
from shared.store.database import (
    Database,
    Document,
    from_document,
    translated,
    unset_or_before,
    update_by_ids,
)
from shared.store.jobs import ended, transition
from shared.tasks import RUNNER_SERVICE

# Equality on state and dispatched, then per owner by priority and age: each owner's heads, and the jobs sent.
HEADS_INDEX = [
    ("state", ASCENDING),
    ("dispatched", ASCENDING),
    ("owner", ASCENDING),
    ("priority", DESCENDING),
    ("_id", ASCENDING),
]


@dataclass(frozen=True)
class DispatchView:
    """What a pass weighs jobs by: runner slots, jobs in flight per owner, users' own limits, what QUEUED jobs
    wait on and, if asked for, each owner's first startable jobs.
    """

    capacity: int  # the slots of the live runners
    in_flight: dict[str, int]  # per owner: RUNNING on a live worker, or sent and not started yet
    limits: dict[str, int]  # user id -> max_running, for the users that have one of their own
    waited: list[str]  # ids that QUEUED jobs still wait on, as ``waited_on`` reads them
    heads: list[Job] | None  # per owner, its first startable jobs (``dispatch_heads``); None if not asked for


def _as(kind: str, **fields: Any) -> Document:
    """A ``$project`` that tags a row of the view with its kind."""
    return {"$project": {"_id": 0, "kind": {"$literal": kind}, **fields}}


class DispatchStore:
    """The jobs collection as the dispatcher sees it: candidates, leases, dependencies and orphans."""

    def __init__(self, database: Database) -> None:
        self._jobs = database.collection("jobs")
        # Read by the dispatch view only; their stores own them (and their indexes).
        self._users = database.collection("users")
        self._queues = database.collection("queues")
        self._workers = database.collection("workers")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            # The dispatcher's heads: per owner, undispatched QUEUED jobs, highest priority first, then oldest.
            await self._jobs.create_index(HEADS_INDEX)
            await self._jobs.create_index([("waiting_on", ASCENDING), ("state", ASCENDING)])
            # The reaper's scan: RUNNING jobs whose lease lapsed.
            await self._jobs.create_index([("state", ASCENDING), ("lease", ASCENDING)])

    async def dispatch_view(
        self, *, alive_after: datetime, heads: int = 0, storing: Sequence[str] = ()
    ) -> DispatchView:
        """What a pass weighs jobs by, in one aggregate (``$unionWith``, MongoDB 4.4+), each part by its own index.

        The workers heartbeating after ``alive_after`` (the database's time; ``WorkerStore.live_workers``
        judges them alike); per owner and worker, the RUNNING jobs, and per owner the jobs sent to
        RabbitMQ and not started yet; the users with a limit of their own (``AccountStore.user_limits``),
        what QUEUED jobs wait on (``waited_on``) and, if ``heads``, each owner's first that many startable
        jobs (``dispatch_heads``). RUNNING jobs count in flight only on a live worker, which the rows of
        the workers tell.
        """
        waiting = {"state": JobState.QUEUED.value, "waiting_on": {"$ne": []}}
        pipeline: list[Document] = [
            {"$match": {"state": JobState.RUNNING.value}},
            {"$group": {"_id": {"owner": "$owner", "worker": "$worker"}, "n": {"$sum": 1}}},
            _as("running", owner="$_id.owner", worker="$_id.worker", n=1),
            {
                "$unionWith": {
                    "coll": self._jobs.name,
                    "pipeline": [
                        {"$match": {"state": JobState.QUEUED.value, "dispatched": {"$ne": None}}},
                        {"$group": {"_id": "$owner", "n": {"$sum": 1}}},
                        _as("sent", owner="$_id", n=1),
                    ],
                }
            },
            {
                "$unionWith": {
                    "coll": self._workers.name,
                    "pipeline": [
                        {"$match": {"heartbeat": {"$gt": alive_after}}},
                        _as("worker", worker="$_id", service=1, n="$concurrency"),
                    ],
                }
            },
            {
                "$unionWith": {
                    "coll": self._users.name,
                    "pipeline": [
                        {"$match": {"max_running": {"$ne": None}}},
                        _as("limit", owner="$_id", n="$max_running"),
                    ],
                }
            },
            {
                "$unionWith": {
                    "coll": self._jobs.name,
                    "pipeline": [
                        {"$match": waiting},
                        {"$unwind": "$waiting_on"},
                        {"$group": {"_id": "$waiting_on"}},
                        _as("waited", owner="$_id"),
                    ],
                }
            },
        ]
        if heads:
            pipeline.append({"$unionWith": {"coll": self._jobs.name, "pipeline": self._heads(heads, storing)}})
        capacity, live, running = 0, set[str](), list[Document]()
        jobs: list[Document] = []
        in_flight: dict[str, int] = {}
        limits: dict[str, int] = {}
        waited: list[str] = []
        with translated("dispatch view"):
            async for row in await self._jobs.aggregate(pipeline):
                kind = row["kind"]
                if kind == "running":
                    running.append(row)
                elif kind == "sent":
                    in_flight[row["owner"]] = in_flight.get(row["owner"], 0) + row["n"]
                elif kind == "worker":
                    live.add(row["worker"])
                    capacity += int(row["n"]) if row["service"] == RUNNER_SERVICE else 0
                elif kind == "limit":
                    limits[row["owner"]] = int(row["n"])
                elif kind == "waited":
                    waited.append(str(row["owner"]))
                else:
                    jobs.append(row["job"])
        # RUNNING jobs of dead workers hold no slot: they wait for recovery, not for capacity.
        for row in running:
            if row.get("worker") in live:
                in_flight[row["owner"]] = in_flight.get(row["owner"], 0) + row["n"]
        found = [from_document(Job, doc) for doc in jobs] if heads else None
        return DispatchView(capacity, in_flight, limits, sorted(waited), found)

    async def dispatch_heads(self, *, per_owner: int, storing: Sequence[str] = ()) -> list[Job]:
        """Each owner's first ``per_owner`` startable jobs, highest priority first, then oldest (see ``_heads``)."""
        with translated("dispatch heads"):
            docs = [row["job"] async for row in await self._jobs.aggregate(self._heads(per_owner, storing))]
        return [from_document(Job, doc) for doc in docs]

    def _heads(self, per_owner: int, storing: Sequence[str]) -> list[Document]:
        """The pipeline of ``dispatch_heads``: rows ``{kind: "head", job}``, an owner's in their order.

        Startable: QUEUED, not sent yet, waiting on nothing, not being sent by a dispatcher now, not
        in a paused queue of its owner's nor in one of the ``storing`` batches. First the owners with
        QUEUED jobs: a ``$sort`` and ``$group`` with ``$first`` on the owner, which MongoDB answers
        with a DISTINCT_SCAN of the jobs store's (owner, state, _id) index (one seek per owner, not
        one key per job; the match is on ``state`` alone, an equality the scan's bounds hold, so no
        fetch has to filter it); then, per owner, its paused queues and a ``$lookup`` that walks
        ``HEADS_INDEX`` from that owner's highest priority and stops after ``per_owner`` startable
        jobs. So a pass reads about ``per_owner`` jobs per owner (plus those it reads past: waiting
        on a dependency, leased by another dispatcher, or in a paused queue), however many jobs each
        owner has queued; an owner whose QUEUED jobs were all sent costs one index probe.
        """
        startable: Document = {
            "state": JobState.QUEUED.value,
            "dispatched": None,
            "waiting_on": {"$size": 0},
            "dispatch_lease": unset_or_before(utcnow()),
        }
        if storing:
            startable["batch"] = {"$nin": sorted(storing)}
        return [
            {"$match": {"state": JobState.QUEUED.value}},
            {"$sort": {"owner": ASCENDING}},
            {"$group": {"_id": "$owner", "first": {"$first": "$_id"}}},
            {
                "$lookup": {
                    "from": self._queues.name,
                    "localField": "_id",
                    "foreignField": "owner",
                    "pipeline": [{"$match": {"paused": True}}, {"$project": {"_id": 0, "name": 1}}],
                    "as": "held",
                }
            },
            {
                "$lookup": {
                    "from": self._jobs.name,
                    "localField": "_id",
                    "foreignField": "owner",
                    "let": {"held": {"$map": {"input": "$held", "as": "queue", "in": "$$queue.name"}}},
                    "pipeline": [
                        {"$match": startable},
                        {"$match": {"$expr": {"$not": [{"$in": ["$queue", "$$held"]}]}}},
                        {"$sort": {"priority": DESCENDING, "_id": ASCENDING}},
                        {"$limit": per_owner},
                    ],
                    "as": "head",
                }
            },
            {"$unwind": "$head"},
            _as("head", job="$head"),
        ]

    async def lease_dispatches(self, job_ids: list[str], *, until: datetime) -> list[str]:
        """Take the right to send these jobs until ``until``; returns those taken, the others being sent, started
        or leased meanwhile. ``until`` tells this caller's leases from another's, so it should be unique to the call.
        """
        if not job_ids:
            return []
        match = {"state": JobState.QUEUED.value, "dispatched": None, "dispatch_lease": unset_or_before(utcnow())}
        with translated(f"lease {len(job_ids)} jobs"):
            changed = await update_by_ids(self._jobs, job_ids, match, {"$set": {"dispatch_lease": until}})
            if changed in (0, len(job_ids)):  # none or all: no need to read which
                return list(job_ids) if changed else []
            ours = {"_id": {"$in": job_ids}, "dispatch_lease": until}
            taken = {doc["_id"] for doc in await self._jobs.find(ours, {"_id": 1}).to_list(None)}
        return [job_id for job_id in job_ids if job_id in taken]

    async def mark_dispatched(self, job_ids: list[str], *, lease: datetime) -> None:
        """Record that these jobs' messages are in RabbitMQ, for each still as this dispatcher leased it.

        A runner may have started one already (the claim keeps the lease), or handed it back (the
        lease is cleared): then there is nothing to mark. The lease stays: it is what the claim looks for.
        """
        with translated(f"{len(job_ids)} dispatched jobs"):
            await update_by_ids(self._jobs, job_ids, {"dispatch_lease": lease}, {"$set": {"dispatched": utcnow()}})

    async def undispatch(self, job_id: str) -> bool:
        """Take a QUEUED job back from RabbitMQ (its lease too), so it is dispatched again later."""
        with translated(f"job {job_id}"):
            result = await self._jobs.update_one(
                {"_id": job_id, "state": JobState.QUEUED.value},
                {"$set": {"dispatched": None, "dispatch_lease": None}},
            )
        return bool(result.modified_count)

    async def undispatch_stale(self, *, dispatched_before: datetime) -> int:
        """Take back QUEUED jobs sent before then and never claimed: their messages were lost (dead-lettered)."""
        with translated("stale dispatches"):
            result = await self._jobs.update_many(
                {"state": JobState.QUEUED.value, "dispatched": {"$lt": dispatched_before}},
                {"$set": {"dispatched": None, "dispatch_lease": None}},
            )
        return int(result.modified_count)

    async def orphaned_jobs(self, *, lease_seconds: float, now: datetime) -> list[Job]:
        """RUNNING jobs whose lease was last renewed over ``lease_seconds`` before ``now``, the database's time.

        Whatever their worker's heartbeat says: a runner restarted under the same name, or one that
        lost track of a job, heartbeats on but renews only the leases of the runs it really holds.
        """
        match = {"state": JobState.RUNNING.value, "lease": unset_or_before(now - timedelta(seconds=lease_seconds))}
        with translated("orphaned jobs"):
            docs = await self._jobs.find(match).to_list(None)
        return [from_document(Job, doc) for doc in docs]

    async def fail_orphan(self, job: Job, *, reason: str) -> Job | None:
        """RUNNING on a lapsed lease -> FAILED with ``reason``; None if it moved meanwhile."""
        return await transition(
            self._jobs,
            {"_id": job.id, "state": JobState.RUNNING.value, "worker": job.worker, "run_token": job.run_token},
            ended(JobState.FAILED, reason),
        )

    async def waited_on(self) -> list[str]:
        """Ids that QUEUED jobs are still waiting on."""
        with translated("dependencies"):
            ids = await self._jobs.distinct("waiting_on", {"state": JobState.QUEUED.value, "waiting_on": {"$ne": []}})
        return sorted(str(i) for i in ids)

    async def stop_waiting(self, job_ids: list[str]) -> None:
        """These jobs succeeded: nobody waits on them any more."""
        with translated("dependencies"):
            await self._jobs.update_many(
                {"state": JobState.QUEUED.value, "waiting_on": {"$in": job_ids}},
                {"$pull": {"waiting_on": {"$in": job_ids}}},
            )

    async def jobs_waiting_on(self, job_ids: list[str]) -> list[Job]:
        """QUEUED jobs waiting on any of these."""
        with translated("dependencies"):
            docs = await self._jobs.find({"state": JobState.QUEUED.value, "waiting_on": {"$in": job_ids}}).to_list(None)
        return [from_document(Job, doc) for doc in docs]

    async def fail_queued(self, job_id: str, *, reason: str) -> Job | None:
        """QUEUED -> FAILED before it ran (a dependency failed); None if it is no longer QUEUED."""
        return await transition(
            self._jobs,
            {"_id": job_id, "state": JobState.QUEUED.value},
            ended(JobState.FAILED, reason),
        )
