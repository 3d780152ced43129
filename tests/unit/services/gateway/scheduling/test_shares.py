"""Fair share: owners take turns by least in flight; a user's priority orders only their own jobs."""

from __future__ import annotations

from services.gateway.scheduling.shares import fair_share
from shared.models import Job, new_id
from tests.helpers.records import make_job


def jobs(owner: str, n: int, priority: int = 5) -> list[Job]:
    return [make_job(id=new_id(), owner=owner, priority=priority) for _ in range(n)]


def owners(chosen: list[Job]) -> list[str]:
    return [job.owner for job in chosen]


def test_the_owner_with_fewer_in_flight_goes_first_whatever_the_priorities() -> None:
    heads = jobs("greedy", 20, priority=9) + jobs("modest", 2, priority=0)
    chosen = fair_share(heads, in_flight={"greedy": 50}, limit_of=lambda owner: None, budget=3)
    assert owners(chosen) == ["modest", "modest", "greedy"]


def test_owners_take_turns_when_even() -> None:
    heads = jobs("a", 5) + jobs("b", 5)
    chosen = fair_share(heads, in_flight={}, limit_of=lambda owner: None, budget=4)
    assert sorted(owners(chosen)) == ["a", "a", "b", "b"] and owners(chosen)[0] != owners(chosen)[1]


def test_an_owners_own_order_is_kept() -> None:
    heads = jobs("a", 4)
    assert fair_share(heads, in_flight={}, limit_of=lambda owner: None, budget=3) == heads[:3]


def test_an_owner_stops_at_their_limit() -> None:
    heads = jobs("limited", 5) + jobs("free", 1)
    chosen = fair_share(heads, in_flight={"limited": 1}, limit_of=lambda o: 2 if o == "limited" else None, budget=10)
    assert sorted(owners(chosen)) == ["free", "limited"]


def test_nothing_beyond_the_budget() -> None:
    assert fair_share(jobs("a", 5), in_flight={}, limit_of=lambda owner: None, budget=0) == []
