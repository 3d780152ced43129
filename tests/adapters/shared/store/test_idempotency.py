"""The idempotency store: a reservation whose request died is taken over, by one retry, once its lease lapsed."""

from __future__ import annotations

import asyncio

from shared.settings import Settings
from shared.store import Stores
from shared.store.idempotency import Reservation
from tests.helpers.records import in_store


async def reserve(stores: Stores, key: str, *, lease_seconds: float) -> Reservation:
    assert (
        await stores.idempotency.reserve_idempotency_key(
            owner="u1", key=key, fingerprint="f", job_id="j1", lease_seconds=lease_seconds
        )
        is None
    )
    held = await stores.idempotency.reserve_idempotency_key(owner="u1", key=key, fingerprint="f", job_id="j2")
    assert held is not None and held.job_id == "j1"
    return held


def test_a_held_lease_is_not_taken_over(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, bool]:
        held = await reserve(stores, "k", lease_seconds=300)
        return held.lapsed, await stores.idempotency.take_over_idempotency_key(owner="u1", key="k", held=held)

    assert in_store(settings, scenario) == (False, False)


def test_a_lapsed_lease_is_taken_over_by_exactly_one_retry(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, list[bool], bool]:
        held = await reserve(stores, "k", lease_seconds=0)
        takers = [stores.idempotency.take_over_idempotency_key(owner="u1", key="k", held=held) for _ in range(6)]
        won = await asyncio.gather(*takers)
        again = await stores.idempotency.reserve_idempotency_key(owner="u1", key="k", fingerprint="f", job_id="j3")
        return held.lapsed, sorted(won), again is not None and not again.lapsed and again.job_id == "j1"

    assert in_store(settings, scenario) == (True, [False] * 5 + [True], True)


def test_a_settled_reservation_never_lapses(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[bool, bool]:
        await reserve(stores, "k", lease_seconds=0)
        await stores.idempotency.settle_idempotency_key(owner="u1", key="k")
        held = await stores.idempotency.reserve_idempotency_key(owner="u1", key="k", fingerprint="f", job_id="j4")
        assert held is not None
        stale = Reservation(fingerprint="f", job_id="j1", lease_until=held.lease_until)
        return held.lapsed, await stores.idempotency.take_over_idempotency_key(owner="u1", key="k", held=stale)

    assert in_store(settings, scenario) == (False, False)
