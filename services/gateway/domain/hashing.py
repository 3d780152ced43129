"""The password-hashing pool: argon2 in a few threads of the gateway's own, with a bounded wait.

An argon2id hash (19 MiB, two passes) takes tens of milliseconds of CPU; argon2-cffi releases
the GIL meanwhile. Run on the event loop, a few dozen logins a second would stop every other
request, ``/healthz`` included; run on the default thread pool, they would queue behind uploads
and without bound. Here at most ``threads`` hashes run at once and ``queue`` more wait; any
further one is refused at once with ``Busy`` (503 and ``Retry-After``) rather than waiting, so
a flood costs the gateway a bounded amount of CPU, memory and latency.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from shared.errors import Busy

P = ParamSpec("P")
T = TypeVar("T")


class HashingPool:
    """Runs password hashing off the event loop: ``threads`` at once, ``queue`` waiting, Busy beyond."""

    def __init__(self, *, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="quern-hashing")
        # Released when the work is done, not when its caller stops waiting (a client that hangs
        # up does not stop a hash that has started), so the bound holds for the threads' work.
        self._slots = threading.BoundedSemaphore(threads + queue)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the pool; Busy at once if as many are running and waiting as it takes."""
        if not self._slots.acquire(blocking=False):
            raise Busy("the gateway is checking as many passwords as it can; try again in a moment", retry_after=1)
        try:
            future: Future[T] = self._executor.submit(fn, *args, **kwargs)
        except RuntimeError:  # shut down
            self._slots.release()
            raise Busy("the gateway is stopping", retry_after=1) from None
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop what waits and let the running hashes end."""
        self._executor.shutdown(wait=False, cancel_futures=True)
