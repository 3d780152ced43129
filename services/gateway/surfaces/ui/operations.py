"""The queues page (counts per state, pause and resume) and the cluster page (workers, queue depths, active jobs)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.cluster import cluster_summary
from services.gateway.domain.queues import QueueRef, pause_queue, queue_page
from services.gateway.plumbing.auth import principal
from services.gateway.surfaces.ui.queue_repairs import repair_message
from services.gateway.surfaces.ui.templates import page
from shared.models import JobState

QUEUES_SHOWN = 200


async def list_queues(request: Request) -> Response:
    """GET /ui/queues: the user's queues (an admin's: everyone's), with their jobs counted per state."""
    who = principal(request)
    counted = await queue_page(
        queues=deps(request).stores.queues, caller=who.user_id, owner=who.owner_filter, limit=QUEUES_SHOWN, after=None
    )
    return page(
        request,
        "queues.html",
        queues=counted.page.items,
        counts=counted.counts,
        states=list(JobState),
        message=repair_message(request, counted.page.items),
    )


async def set_paused(request: Request, paused: bool) -> Response:
    """Pause or resume a queue, then back to the queues page."""
    who, d = principal(request), deps(request)
    ref = QueueRef(request.path_params["queue_id"], caller=who.user_id, owner=who.owner_filter)
    await pause_queue(ref, queues=d.stores.queues, paused=paused, wake=d.wake)
    return RedirectResponse(request.url_for("ui:queues").path, status_code=303)


async def pause(request: Request) -> Response:
    """POST /ui/queues/{queue_id}/pause: nothing new starts; running jobs finish."""
    return await set_paused(request, True)


async def resume(request: Request) -> Response:
    """POST /ui/queues/{queue_id}/resume."""
    return await set_paused(request, False)


async def cluster(request: Request) -> Response:
    """GET /ui/cluster: the workers with their busy slots and last heartbeat, queue depths, the active jobs."""
    d = deps(request)
    summary = await cluster_summary(
        workers=d.stores.workers, jobs=d.stores.jobs, broker=d.broker, owner=principal(request).owner_filter
    )
    alive = {worker.id: worker.alive(d.settings.worker_heartbeat_seconds) for worker in summary.workers}
    return page(request, "cluster.html", summary=summary, alive=alive)
