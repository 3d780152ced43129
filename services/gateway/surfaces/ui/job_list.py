"""The jobs page: the user's jobs (an admin's: everyone's), filtered, a page at a time, counted per state."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.events import horizon
from services.gateway.plumbing.auth import principal
from services.gateway.surfaces.ui.templates import page
from shared.models import JobState
from shared.store.jobs import JobFilter

PAGE_SIZE = 50
TEXT_FILTERS = ("app", "queue", "tag", "name")
MAX_FILTER_CHARS = 200


@dataclass(frozen=True)
class JobListQuery:
    """What the page shows: the filters as typed, and where the page starts."""

    state: JobState | None
    text: dict[str, str]
    after: str | None

    @classmethod
    def of(cls, request: Request) -> JobListQuery:
        """The query of a jobs page; values that cannot be meant are left out rather than refused."""
        raw_state = request.query_params.get("state", "").upper()
        state = JobState(raw_state) if raw_state in JobState.__members__ else None
        text = {name: request.query_params.get(name, "").strip()[:MAX_FILTER_CHARS] for name in TEXT_FILTERS}
        after = request.query_params.get("after") or None
        return cls(state=state, text={k: v for k, v in text.items() if v}, after=after)

    def where(self, *, with_state: bool = True) -> JobFilter:
        """The store's filter (without the state, for the counts per state)."""
        return JobFilter(
            states=(self.state,) if with_state and self.state is not None else (),
            app=self.text.get("app"),
            queue=self.text.get("queue"),
            tag=self.text.get("tag"),
            name_prefix=self.text.get("name"),
        )

    def link(self, **changes: str | None) -> str:
        """The query string of this page with ``changes`` (None removes a parameter)."""
        params: dict[str, str | None] = {**self.text, "state": None if self.state is None else self.state.value}
        params |= changes
        return "?" + urlencode({k: v for k, v in params.items() if v})


async def list_jobs(request: Request) -> Response:
    """GET /ui/jobs: the page of jobs; its counts per state come from ``count_jobs``, fetched by the page's script."""
    query, who, jobs = JobListQuery.of(request), principal(request), deps(request).stores.jobs
    found = await jobs.list_jobs(owner=who.owner_filter, limit=PAGE_SIZE, after=query.after, where=query.where())
    return page(
        request,
        "jobs.html",
        jobs=found.items,
        next_link=None if found.next_after is None else query.link(after=found.next_after),
        first_link=query.link() if query.after else None,
        query=query,
        states=list(JobState),
        stream_after=horizon(),  # the page's stream starts here: what happened before is shown already
    )


async def count_jobs(request: Request) -> Response:
    """GET /ui/jobs/counts: how many jobs the page's other filters match, in all and per state (JSON).

    Counting is an aggregate over every matching job, so the page does not wait for it: the list
    shows at once, and its script fills the counts in.
    """
    query, who = JobListQuery.of(request), principal(request)
    counts = await deps(request).stores.jobs.count_by_state(owner=who.owner_filter, where=query.where(with_state=False))
    by_state = {state.value: counts.get(state, 0) for state in JobState}
    return JSONResponse({"total": sum(by_state.values()), "counts": by_state})
