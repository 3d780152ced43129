from __future__ import annotations

import asyncio
import threading

import pytest

from services.gateway.domain.hashing import HashingPool
from shared.errors import Busy


def test_hashing_runs_off_the_loop_and_refuses_at_once_when_full() -> None:
    release = threading.Event()

    def slow_hash() -> str:
        release.wait(10)
        return threading.current_thread().name

    async def scenario() -> None:
        pool = HashingPool(threads=1, queue=1)
        try:
            running = asyncio.create_task(pool.run(slow_hash))
            waiting = asyncio.create_task(pool.run(slow_hash))
            ticks = 0
            for _ in range(20):  # the loop goes on while the hash holds its thread
                await asyncio.sleep(0)
                ticks += 1
            assert ticks == 20 and not running.done()
            with pytest.raises(Busy) as refused:
                await pool.run(slow_hash)
            assert refused.value.retry_after == 1
            release.set()
            assert (await running).startswith("quern-hashing")
            await waiting
            assert await pool.run(str.upper, "free again") == "FREE AGAIN"
        finally:
            release.set()
            pool.close()

    asyncio.run(scenario())


def test_a_caller_that_stops_waiting_keeps_its_slot_until_the_hash_ends() -> None:
    release = threading.Event()

    async def scenario() -> None:
        pool = HashingPool(threads=1, queue=0)
        try:
            caller = asyncio.create_task(pool.run(release.wait, 10))
            await asyncio.sleep(0.01)
            caller.cancel()
            await asyncio.sleep(0.01)
            with pytest.raises(Busy):  # the thread still hashes for the caller that left
                await pool.run(str, 1)
            release.set()
            for _ in range(100):
                await asyncio.sleep(0.01)
                try:
                    assert await pool.run(str, 1) == "1"
                    return
                except Busy:
                    continue
            raise AssertionError("the slot never came back")
        finally:
            release.set()
            pool.close()

    asyncio.run(scenario())
