"""Fair share: which of the owners' startable jobs a pass sends, owners taking turns by who has least in flight.

A user's ``priority`` orders only their own jobs: the slots go round the owners, the next one
always to the owner with the fewest jobs in flight (running, or sent and not started), ties to
the owner whose next job is oldest. So a user with thousands of jobs queued at priority 9
and another who submits ten at priority 0 share the runners: the second's first job takes the
first slot that frees, as they have fewer in flight.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable

from shared.models import Job


def fair_share(
    heads: Iterable[Job], *, in_flight: dict[str, int], limit_of: Callable[[str], int | None], budget: int
) -> list[Job]:
    """Up to ``budget`` of ``heads`` (each owner's in their own order), owners taking turns by least in flight.

    An owner stops at their limit (``limit_of``; None: none). Jobs are returned in the order chosen.
    """
    queued: dict[str, deque[Job]] = {}
    for job in heads:
        queued.setdefault(job.owner, deque()).append(job)

    def has_room(owner: str, running: int) -> bool:
        limit = limit_of(owner)
        return limit is None or running < limit

    # (in flight, the next job's id: a ULID, so oldest first, the owner)
    turns = [(in_flight.get(owner, 0), jobs[0].id, owner) for owner, jobs in queued.items()]
    turns = [turn for turn in turns if has_room(turn[2], turn[0])]
    heapq.heapify(turns)
    chosen: list[Job] = []
    while turns and len(chosen) < budget:
        running, _, owner = heapq.heappop(turns)
        jobs = queued[owner]
        chosen.append(jobs.popleft())
        if jobs and has_room(owner, running + 1):
            heapq.heappush(turns, (running + 1, jobs[0].id, owner))
    return chosen
