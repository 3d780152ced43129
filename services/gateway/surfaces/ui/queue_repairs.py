"""The queues page's repairs: retry a queue's failed jobs, recover the running jobs of gone workers.

Each is a form post carrying the session's CSRF token; the queues page then says what was done,
from the queue's id and counts in its query (an id of a queue it lists and numbers only, so a
link cannot make the page say anything else).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.queues import QueueRef, RetryRequest, find_queue, recover_jobs, retry_jobs
from services.gateway.plumbing.auth import principal
from shared.models import Queue

COUNTS = ("retried", "skipped", "recovered")


def to_queues(request: Request, queue_id: str, **counts: int) -> Response:
    """Back to the queues page, with what was done to the queue."""
    url = request.url_for("ui:queues").include_query_params(queue=queue_id, **counts)
    return RedirectResponse(f"{url.path}?{url.query}", status_code=303)


def repair_message(request: Request, queues: list[Queue]) -> str | None:
    """What the last retry or recovery did to one of ``queues``, from the queues page's query."""
    counts = {name: request.query_params.get(name, "") for name in COUNTS}
    named = {queue.id: queue.name for queue in queues}
    queue = named.get(request.query_params.get("queue", ""))
    if queue is None or not all(value.isdigit() for value in counts.values() if value):
        return None
    if counts["recovered"].isdigit():
        return f"Queue {queue}: {counts['recovered']} running jobs of gone workers put back to QUEUED."
    said = f"Queue {queue}: {counts['retried'] or 0} failed jobs put back to QUEUED"
    skipped = counts["skipped"]
    return said + (f", {skipped} still being packaged (retry them later)." if skipped not in ("", "0") else ".")


async def retry(request: Request) -> Response:
    """POST /ui/queues/{queue_id}/retry: the queue's FAILED jobs go back to QUEUED."""
    who, d = principal(request), deps(request)
    ref = QueueRef(request.path_params["queue_id"], caller=who.user_id, owner=who.owner_filter)
    queue = await find_queue(ref, queues=d.stores.queues)
    done = await retry_jobs(
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        queue=queue,
        wanted=RetryRequest(),
        by=who.username,
        wake=d.wake,
    )
    return to_queues(request, queue.id, retried=len(done.retried), skipped=len(done.skipped))


async def recover(request: Request) -> Response:
    """POST /ui/queues/{queue_id}/recover: RUNNING jobs whose worker stopped heartbeating go back to QUEUED."""
    who, d = principal(request), deps(request)
    ref = QueueRef(request.path_params["queue_id"], caller=who.user_id, owner=who.owner_filter)
    queue = await find_queue(ref, queues=d.stores.queues)
    done = await recover_jobs(
        ref,
        workers=d.stores.workers,
        queues=d.stores.queues,
        jobs=d.stores.jobs,
        events=d.stores.events,
        storage=d.storage,
        heartbeat_seconds=d.settings.worker_heartbeat_seconds,
        by=who.username,
        wake=d.wake,
    )
    return to_queues(request, queue.id, recovered=len(done.recovered))
