"""Quotas in force and the per-gateway count of event streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.gateway.domain.quotas import QueuedCounts, Quotas, StreamCounts
from shared.errors import EventStreamsQuota
from shared.models import QuotaOverrides, User, utcnow
from shared.settings import GatewaySettings

QUOTAS = Quotas(queued_jobs=0, stored_bytes=0, pending_uploads=0, event_streams=1, batch_jobs=0)


def test_a_users_own_quotas_override_the_deployments_and_null_falls_back() -> None:
    settings: Any = GatewaySettings.model_construct(
        quota_queued_jobs=10,
        quota_stored_bytes=20,
        quota_pending_uploads=30,
        quota_event_streams=40,
        quota_batch_jobs=50,
    )
    own = QuotaOverrides(queued_jobs=1, event_streams=0)
    user = User(id="u", username="u", password_hash="-", created=utcnow(), quotas=own)
    assert Quotas.of(user, settings) == Quotas(
        queued_jobs=1, stored_bytes=20, pending_uploads=30, event_streams=0, batch_jobs=50
    )


async def ticks(n: int, *, fail: bool = False) -> AsyncIterator[int]:
    for tick in range(n):
        yield tick
    if fail:
        raise RuntimeError("the stream broke")


def test_a_stream_counts_from_its_first_item_until_it_ends_or_is_closed() -> None:
    async def scenario() -> list[int]:
        streams, seen = StreamCounts(), []
        stream = streams.counted("u", ticks(3))
        seen.append(streams.open("u"))  # not started: nothing to release if it never is
        await anext(stream)
        seen.append(streams.open("u"))
        with pytest.raises(EventStreamsQuota):
            streams.check("u", QUOTAS)
        streams.check("someone else", QUOTAS)
        await stream.aclose()  # the client went away
        seen.append(streams.open("u"))
        with pytest.raises(RuntimeError):
            async for _ in streams.counted("u", ticks(2, fail=True)):
                pass
        seen.append(streams.open("u"))
        return seen

    assert asyncio.run(scenario()) == [0, 1, 0, 0]


def test_a_fresh_count_well_under_the_quota_spares_the_next_checks_until_half_of_it() -> None:
    recent = QueuedCounts()
    assert not recent.allows("ann", 1, limit=10)  # never counted: count
    recent.counted("ann", 3)
    assert recent.allows("ann", 1, limit=10) and recent.allows("ann", 1, limit=10)  # 4, then 5: half of 10
    assert not recent.allows("ann", 1, limit=10)  # 6 would pass half: count again
    assert not recent.allows("bob", 1, limit=10)  # counts are per owner


def test_a_stale_count_is_counted_again() -> None:
    class Stale(QueuedCounts):
        FRESH_SECONDS = -1.0

    recent = Stale()
    recent.counted("ann", 0)
    assert not recent.allows("ann", 1, limit=1000)
