"""Jobs: storing, finding and listing them, and the moves of their life (claim, finish, cancel, force, requeue).

Every move is a compare-and-set on the state the job is expected to be in (``transition``), so of
two racing moves one wins and the other learns, by None, that the job moved meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from shared.errors import NotFound
from shared.models import (
    DEFAULT_QUEUE,
    ExecutorLog,
    Job,
    JobProgress,
    JobState,
    StateChange,
    new_id,
    utcnow,
)
from shared.store.database import (
    Collection,
    Database,
    Document,
    Page,
    between,
    from_document,
    named_and_created,
    owner_filter,
    read_one,
    read_page,
    starting_with,
    to_document,
    translated,
    update_and_read,
    update_by_ids,
)

ACTIVE = [JobState.QUEUED.value, JobState.RUNNING.value]


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows: all of them unless narrowed."""

    states: tuple[JobState, ...] = ()
    exit_code: int | None = None
    app: str | None = None
    tag: str | None = None
    name_prefix: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    queue: str | None = None
    batch: str | None = None


def _matching(where: JobFilter) -> Document:
    query: Document = {}
    if where.queue is not None:
        query["queue"] = where.queue
    if where.batch is not None:
        query["batch"] = where.batch
    if where.states:
        query["state"] = {"$in": [state.value for state in where.states]}
    if where.exit_code is not None:
        query["exit_code"] = where.exit_code
    if where.app is not None:
        query["app"] = where.app
    if where.tag is not None:
        query["tags"] = where.tag
    query |= named_and_created(where.name_prefix, where.created_after, where.created_before)
    if finished := between(where.finished_after, where.finished_before):
        query["finished"] = finished
    return query


@dataclass(frozen=True)
class ActiveCount:
    """How many of one owner's jobs of one app are in one active state in one queue."""

    owner: str
    queue: str
    app: str
    state: JobState
    n: int


async def transition(
    jobs: Collection,
    match: Document,
    changes: Document,
    *,
    push: Document | None = None,
    stamp: tuple[str, ...] = (),
    add: Document | None = None,
) -> Job | None:
    """Set ``changes`` on the job ``match`` finds (by ``_id`` and expected fields); it as changed, or None.

    ``stamp`` names fields set to the database server's time; ``add`` counters to increase.
    """
    update: Document = {"$set": changes} | ({"$push": push} if push else {})
    if stamp:
        update["$currentDate"] = {name: True for name in stamp}
    if add:
        update["$inc"] = add
    with translated(f"job {match['_id']}"):
        doc = await update_and_read(jobs, match, update)
    return None if doc is None else from_document(Job, doc)


# What a run's end sets (``JobStore.finish_job``): the rest of the job is as its claim left it.
END_FIELDS = ("state", "finished", "exit_code", "error", "outputs", "logs", "output_logs", "archive")


def ended(state: JobState, reason: str) -> Document:
    """The changes that end a job now, in ``state``, for ``reason`` rather than by its app's exit."""
    return {"state": state.value, "finished": utcnow(), "error": {"reason": reason, "stderr_tail": ""}}


def _history_entry(change: StateChange) -> Document:
    entry = change.model_dump(mode="python", by_alias=True)
    entry["from"], entry["to"] = change.from_.value, change.to.value
    return entry


class JobStore:
    """Jobs and the moves of their life."""

    def __init__(self, database: Database) -> None:
        self._jobs = database.collection("jobs")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._jobs.create_index([("state", ASCENDING), ("created", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("datasets", ASCENDING), ("state", ASCENDING)])
            # The list filters: each narrows one owner's jobs, which are then read in id order.
            # (owner, state, _id) also serves the (owner, state) lookups of active jobs.
            await self._jobs.create_index([("owner", ASCENDING), ("state", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("app", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("tags", ASCENDING), ("_id", DESCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("name", ASCENDING)])
            await self._jobs.create_index([("owner", ASCENDING), ("finished", DESCENDING)])

    async def insert_job(self, job: Job) -> None:
        """Record a new job."""
        with translated(f"job {job.id}"):
            await self._jobs.insert_one(to_document(job))

    async def get_job(self, job_id: str, *, owner: str | None = None) -> Job:
        """One job (of ``owner``, unless None), or NotFound."""
        match = {"_id": job_id, **owner_filter(owner)}
        return await read_one(self._jobs, Job, match, what=f"job {job_id}", missing=f"no job {job_id}")

    async def get_job_to_run(self, job_id: str) -> Job:
        """A job about to run, read with whether its owner registered a webhook, in one command; NotFound if gone.

        The job read says ``receivers_added`` if it is marked so or its owner has a webhook now (one
        ``$lookup`` on the webhooks' owner index, stopped at the first): its end is then announced.
        Otherwise the end is recorded unless a webhook was registered meanwhile (``finish_job``).
        """
        pipeline: list[Document] = [
            {"$match": {"_id": job_id}},
            {
                "$lookup": {
                    "from": "webhooks",
                    "localField": "owner",
                    "foreignField": "owner",
                    "pipeline": [{"$limit": 1}, {"$project": {"_id": 1}}],
                    "as": "registered",
                }
            },
        ]
        with translated(f"job {job_id}"):
            docs = [doc async for doc in await self._jobs.aggregate(pipeline)]
        if not docs:
            raise NotFound(f"no job {job_id}")
        doc = docs[0]
        doc["receivers_added"] = bool(doc.get("receivers_added")) or bool(doc.pop("registered"))
        return from_document(Job, doc)

    async def mark_receivers_added(self, owner: str) -> None:
        """Mark ``owner``'s QUEUED and RUNNING jobs as having a receiver of their end (a webhook just registered)."""
        with translated(f"jobs of {owner}"):
            await self._jobs.update_many(
                {"owner": owner, "state": {"$in": ACTIVE}}, {"$set": {"receivers_added": True}}
            )

    async def list_jobs(
        self,
        *,
        owner: str | None,
        limit: int,
        after: str | None,
        where: JobFilter | None = None,
        oldest_first: bool = False,
    ) -> Page[Job]:
        """Jobs, newest first (or oldest first), narrowed by ``where``."""
        match = owner_filter(owner) | _matching(where or JobFilter())
        return await read_page(self._jobs, Job, match, limit=limit, after=after, oldest_first=oldest_first)

    async def count_by_state(self, *, owner: str | None, where: JobFilter | None = None) -> dict[JobState, int]:
        """How many jobs (of ``owner``, unless None) narrowed by ``where`` are in each state that has any."""
        match = owner_filter(owner) | _matching(where or JobFilter())
        pipeline = [{"$match": match}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}]
        with translated("count jobs by state"):
            rows = [row async for row in await self._jobs.aggregate(pipeline)]
        return {JobState(row["_id"]): int(row["n"]) for row in rows}

    async def count_queued(self, owner: str, *, limit: int = 0) -> int:
        """How many QUEUED jobs ``owner`` has, counting no further than ``limit`` (0: all); along (owner, state)."""
        match = {"owner": owner, "state": JobState.QUEUED.value}
        with translated("count queued jobs"):
            return (
                await self._jobs.count_documents(match, limit=limit)
                if limit
                else await self._jobs.count_documents(match)
            )

    async def job_states(self, job_ids: list[str], *, owner: str | None = None) -> dict[str, JobState]:
        """The state of each of these jobs (of ``owner``, unless None) that still exists."""
        states: dict[str, JobState] = {}
        with translated("job states"):
            for start in range(0, len(job_ids), 1000):
                chunk = job_ids[start : start + 1000]
                docs = await self._jobs.find({"_id": {"$in": chunk}, **owner_filter(owner)}, {"state": 1}).to_list(None)
                states |= {doc["_id"]: JobState(doc["state"]) for doc in docs}
        return states

    async def count_active_jobs(self, *, owner: str | None) -> list[ActiveCount]:
        """QUEUED and RUNNING jobs (of ``owner``, unless None) counted per owner, queue, app and state."""
        match = {"state": {"$in": ACTIVE}, **owner_filter(owner)}
        key = {"owner": "$owner", "queue": "$queue", "app": "$app", "state": "$state"}
        pipeline = [{"$match": match}, {"$group": {"_id": key, "n": {"$sum": 1}}}]
        with translated("count jobs"):
            rows = [row async for row in await self._jobs.aggregate(pipeline)]
        return [
            ActiveCount(
                owner=row["_id"]["owner"],
                queue=row["_id"].get("queue") or DEFAULT_QUEUE,  # jobs stored before queues existed
                app=row["_id"]["app"],
                state=JobState(row["_id"]["state"]),
                n=row["n"],
            )
            for row in rows
        ]

    async def active_jobs_using(self, file_id: str, *, owner: str) -> list[str]:
        """Ids of ``owner``'s QUEUED or RUNNING jobs that take ``file_id`` as an input.

        A job's inputs are its owner's files, so only that owner's active jobs are read; the
        input map is searched here rather than in the query, as its keys are app-defined.
        """
        with translated(f"jobs using {file_id}"):
            docs = await self._jobs.find({"owner": owner, "state": {"$in": ACTIVE}}, {"inputs": 1}).to_list(None)
        return sorted(doc["_id"] for doc in docs if file_id in (doc.get("inputs") or {}).values())

    async def dataset_in_use(self, dataset_id: str) -> bool:
        """Whether a QUEUED or RUNNING job reads the dataset."""
        with translated(f"jobs using dataset {dataset_id}"):
            return await self._jobs.find_one({"datasets": dataset_id, "state": {"$in": ACTIVE}}, {"_id": 1}) is not None

    async def delete_job(self, job_id: str) -> None:
        """Forget a job (its S3 objects are the caller's business)."""
        with translated(f"job {job_id}"):
            await self._jobs.delete_one({"_id": job_id})

    async def delete_jobs(self, job_ids: list[str]) -> None:
        """Forget these jobs (their S3 objects are the caller's business); one call per job, as $in is slow here."""
        for job_id in job_ids:
            await self.delete_job(job_id)

    async def claim_job(self, job: Job, *, worker: str) -> Job | None:
        """Move a dispatched job, as just read, from QUEUED to RUNNING for ``worker``, with a new run token and a lease.

        One ``update_one``, a compare-and-set on the state and the dispatch lease read: None, and no
        write, if the job read was not QUEUED or its dispatch was taken back (lease cleared: its stale
        message is dropped); None too if either changed since the read (someone else got there first,
        or it was taken back and sent again). A dispatcher's lease stays once the message is sent, so a
        runner may claim before the send is recorded; each new dispatch leases anew (``lease_dispatches``).

        The job returned is the one read with the claim's changes, not read back: what may change in
        between without a new lease (the ``dispatched`` stamp) a run does not use, and the lease, stamped
        by the database's clock, is left as read (the runner renews it by id and never reads it).
        """
        if job.state is not JobState.QUEUED or job.dispatch_lease is None:
            return None
        claim = {"state": JobState.RUNNING, "worker": worker, "started": utcnow(), "run_token": new_id()}
        match = {"_id": job.id, "state": JobState.QUEUED.value, "dispatch_lease": job.dispatch_lease}
        update = {"$set": claim | {"state": JobState.RUNNING.value}, "$currentDate": {"lease": True}}
        with translated(f"job {job.id}"):
            result = await self._jobs.update_one(match, update)
        return job.model_copy(update=claim) if result.matched_count else None

    async def renew_leases(self, job_ids: list[str], *, worker: str) -> int:
        """Renew, by the database's clock, the leases of those of these jobs still RUNNING on ``worker``; how many."""
        if not job_ids:
            return 0
        match = {"state": JobState.RUNNING.value, "worker": worker}
        with translated(f"renew {len(job_ids)} leases"):
            return await update_by_ids(self._jobs, job_ids, match, {"$currentDate": {"lease": True}})

    async def preempt_job(self, job: Job, change: StateChange, *, checkpoint: str | None) -> Job | None:
        """Hand a run back: RUNNING on this run -> QUEUED, counted as a preemption, never as an attempt.

        None if the job moved meanwhile or was asked to stop (a cancel wins over a shutdown).
        Its dependencies succeeded already, so it does not wait on them again.
        """
        match = {
            "_id": job.id,
            "state": JobState.RUNNING.value,
            "worker": job.worker,
            "run_token": job.run_token,
            "cancel_requested": None,
        }
        reset: Document = {
            "state": JobState.QUEUED.value,
            "started": None,
            "worker": None,
            "run_token": None,
            "lease": None,
            "progress": None,
            "dispatched": None,
            "dispatch_lease": None,
        }
        if checkpoint is not None:
            reset["checkpoint"] = checkpoint
        return await transition(
            self._jobs, match, reset, push={"history": _history_entry(change)}, add={"preemptions": 1}
        )

    async def finish_job(self, ended: Job) -> Job | None:
        """Record the end of a run, ``ended`` being the job as claimed with its end's fields; None if stale.

        The end's fields are ``END_FIELDS``: the terminal state, when it ended (now if unset), exit
        code, error, outputs, logs, a TES task's delivered files (``output_logs``) and, for a run its
        runner archived, its ``archive``, attached only with its end. None if the job is not RUNNING on
        that run (worker and run token) any more: a stale run.

        One ``update_one``, a compare-and-set on the run. The job returned is ``ended``, not read
        back: what changed meanwhile without moving it off this run is as claimed (``cancel_requested``,
        ``progress``, ``lease``, ``executor_logs``, ``dispatched``); the end's event, log line and
        announcement use none of them.

        A job read without ``receivers_added`` is first finished only if still unmarked (no webhook
        registered since its take: its end goes to nobody, and nothing is read to learn it); if that
        matches nothing, the finish is tried as usual, and the job returned says ``receivers_added``.
        """
        if not ended.state.terminal:
            raise ValueError(f"{ended.state} is not a terminal state")
        done = ended if ended.finished is not None else ended.model_copy(update={"finished": utcnow()})
        document = to_document(done)  # each field stored as an inserted job's would be
        match = {"_id": done.id, "state": JobState.RUNNING.value, "worker": done.worker, "run_token": done.run_token}
        update = {"$set": {name: document[name] for name in END_FIELDS}}
        with translated(f"job {done.id}"):
            if not done.receivers_added:
                written = await self._jobs.update_one(match | {"receivers_added": {"$ne": True}}, update)
                if written.matched_count:
                    return done
                done = done.model_copy(update={"receivers_added": True})  # marked, or stale: told apart below
            written = await self._jobs.update_one(match, update)
        return done if written.matched_count else None

    async def keep_logs_of_ended(
        self, job_id: str, *, worker: str, run_token: str | None, logs: dict[str, str]
    ) -> Job | None:
        """Attach the logs of a run whose job was forced to an end meanwhile; None unless it is ended and unpackaged."""
        terminal = [state.value for state in JobState if state.terminal]
        match = {"_id": job_id, "worker": worker, "run_token": run_token, "state": {"$in": terminal}, "archive": None}
        return await transition(self._jobs, match, {"logs": logs})

    async def set_progress(self, job_id: str, progress: JobProgress, *, run_token: str | None) -> None:
        """Record the app's latest progress report on its job, while the job is still on that run (not a stale one)."""
        with translated(f"job {job_id}"):
            await self._jobs.update_one(
                {"_id": job_id, "run_token": run_token}, {"$set": {"progress": progress.model_dump()}}
            )

    async def record_executor_logs(
        self, job_id: str, executor_logs: list[ExecutorLog], *, worker: str, run_token: str | None
    ) -> bool:
        """Record a TES task's executor logs so far (the whole list), while the job is RUNNING on that run.

        False if it is not (a stale run, or forced to an end meanwhile): the caller's run is over.
        """
        match = {"_id": job_id, "state": JobState.RUNNING.value, "worker": worker, "run_token": run_token}
        with translated(f"job {job_id}"):
            done = await self._jobs.update_one(
                match, {"$set": {"executor_logs": [entry.model_dump() for entry in executor_logs]}}
            )
        return done.matched_count == 1

    async def cancel_queued(self, job_id: str, *, owner: str | None, reason: str) -> Job | None:
        """QUEUED -> CANCELED at once; None if the job is not (or no longer) QUEUED."""
        return await transition(
            self._jobs,
            {"_id": job_id, "state": JobState.QUEUED.value, **owner_filter(owner)},
            ended(JobState.CANCELED, reason),
        )

    async def request_cancel(self, job_id: str, *, owner: str | None) -> Job | None:
        """Flag a RUNNING job for its runner to stop; None if it is not RUNNING."""
        return await transition(
            self._jobs,
            {"_id": job_id, "state": JobState.RUNNING.value, **owner_filter(owner)},
            {"cancel_requested": utcnow()},
        )

    async def cancel_requests(self, job_ids: list[str], *, worker: str) -> list[str]:
        """Which of these jobs ``worker`` runs should stop: asked to, or no longer RUNNING on it (recovered, forced)."""
        fields = {"cancel_requested": 1, "state": 1, "worker": 1}
        with translated("find cancel requests"):
            docs = await self._jobs.find({"_id": {"$in": job_ids}}, fields).to_list(None)
        # Judged here rather than in an $or: see shared.store.database.
        return [
            doc["_id"]
            for doc in docs
            if doc.get("cancel_requested") is not None
            or doc.get("state") != JobState.RUNNING.value
            or doc.get("worker") != worker
        ]

    async def force_state(self, job: Job, change: StateChange) -> Job | None:
        """Set the state of ``job`` to ``change.to`` and append the change to its history.

        None if the job is no longer in ``change.from_`` (something else moved it meanwhile).
        A forced end also stamps ``finished`` (if unset) and, for a RUNNING job, ``cancel_requested``,
        so its runner stops the app rather than running on for a job that is over.
        """
        changes: Document = {"state": change.to.value}
        if change.to.terminal and job.finished is None:
            changes["finished"] = change.at
        if change.to.terminal and change.from_ is JobState.RUNNING and job.cancel_requested is None:
            changes["cancel_requested"] = change.at
        match = {"_id": job.id, "state": change.from_.value}
        return await transition(self._jobs, match, changes, push={"history": _history_entry(change)})

    async def requeue_job(self, job: Job, change: StateChange, *, attempt: int = 1) -> Job | None:
        """Put a finished (retry) or orphaned RUNNING (recover) job back to QUEUED as if new, recording why.

        None if the job moved meanwhile. Its dependencies are waited on again; its last run's outcome is cleared.
        ``attempt`` is the number of the run to come (a recovery counts on; a retry starts over).
        """
        match: Document = {"_id": job.id, "state": change.from_.value}
        if change.from_ is JobState.RUNNING:
            match["worker"], match["run_token"] = job.worker, job.run_token
        reset: Document = {
            "state": JobState.QUEUED.value,
            "started": None,
            "finished": None,
            "worker": None,
            "run_token": None,
            "lease": None,
            "exit_code": None,
            "error": None,
            "cancel_requested": None,
            "outputs": [],
            "logs": {},
            "archive": None,
            "selections": {},
            "progress": None,
            "dispatched": None,
            "dispatch_lease": None,
            "waiting_on": job.depends_on,
            "attempt": attempt,
            "expires": None,
            "expired": None,
            "expiry_lease": None,
            "packaging_resent": None,
            "packaging_lease": None,
        }
        if change.from_.terminal:
            reset["checkpoint"] = None  # a run started over does not resume from an earlier one's checkpoint
        return await transition(self._jobs, match, reset, push={"history": _history_entry(change)})

    # TES tasks

    async def list_tasks(
        self, app: str, *, owner: str | None, limit: int, after: str | None, where: TaskFilter
    ) -> Page[Job]:
        """The TES tasks (jobs of ``app``) of ``owner``, newest first, narrowed by ``where``."""
        match: Document = owner_filter(owner) | {"app": app}
        if where.name_prefix:
            match["name"] = starting_with(where.name_prefix)
        conditions = [TASK_STATES[where.state]] if where.state is not None else []
        if where.tags:
            # Each pair is one task_tags element: an empty value asks only that the key be there.
            wanted = [{"key": key} | ({"value": value} if value else {}) for key, value in where.tags]
            match["task_tags"] = {"$all": [{"$elemMatch": one} for one in wanted]}
        if conditions:
            match["$and"] = conditions
        return await read_page(self._jobs, Job, match, limit=limit, after=after)


@dataclass(frozen=True)
class TaskFilter:
    """Which TES tasks a list shows: a name prefix, a TES state (see ``TASK_STATES``), tag pairs ("" any value)."""

    name_prefix: str | None = None
    state: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


_RUNNING = JobState.RUNNING.value
_NOTHING: Document = {"_id": {"$in": []}}
# A queued job handed back by a shutting-down runner, not run since: its last forced change says so.
_HANDED_BACK: Document = {
    "$let": {
        "vars": {"last": {"$arrayElemAt": [{"$ifNull": ["$history", []]}, -1]}},
        "in": {
            "$and": [
                {"$gt": [{"$ifNull": ["$preemptions", 0]}, 0]},
                {"$eq": ["$$last.to", JobState.QUEUED.value]},
                {"$eq": ["$$last.reason", "preempted by shutdown"]},
            ]
        },
    }
}
# Each TES state as a condition on the job (services/gateway/domain/tasks.py task_state is its twin for one job).
TASK_STATES: dict[str, Document] = {
    "UNKNOWN": _NOTHING,
    "PAUSED": _NOTHING,
    "QUEUED": {"state": JobState.QUEUED.value, "$expr": {"$not": [_HANDED_BACK]}},
    "PREEMPTED": {"state": JobState.QUEUED.value, "$expr": _HANDED_BACK},
    "INITIALIZING": {"state": _RUNNING, "cancel_requested": None, "executor_logs.0": {"$exists": False}},
    "RUNNING": {"state": _RUNNING, "cancel_requested": None, "executor_logs.0": {"$exists": True}},
    "CANCELING": {"state": _RUNNING, "cancel_requested": {"$ne": None}},
    "COMPLETE": {"state": JobState.SUCCEEDED.value},
    "EXECUTOR_ERROR": {
        "$or": [{"state": JobState.FAILED.value, "exit_code": {"$ne": None}}, {"state": JobState.TIMED_OUT.value}]
    },
    "SYSTEM_ERROR": {"state": JobState.FAILED.value, "exit_code": None},
    "CANCELED": {"state": JobState.CANCELED.value},
}
