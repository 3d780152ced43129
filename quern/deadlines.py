"""Ending waits on time, in both flavours of the SDK: ``AsyncDeadline`` for asyncio, ``Deadline`` for blocking code.

Written by hand, unlike the rest of ``quern._sync``: the generator turns ``AsyncDeadline`` into
``Deadline``, so the two have the same methods. asyncio cancels whatever is awaited when the time
comes; blocking code cannot be interrupted, so it checks between steps and ends a quiet event
stream by closing its answer from a timer thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Self

import httpx
from httpx_sse import EventSource, ServerSentEvent


class _Instant:
    """A ``time.monotonic()`` instant (None: never), and the TimeoutError message of a wait that reaches it."""

    def __init__(self, at: float | None, message: str = "the deadline has passed") -> None:
        self.at = at
        self.message = message

    @classmethod
    def after(cls, seconds: float | None, message: str) -> Self:
        """The instant ``seconds`` from now (None: never)."""
        return cls(None if seconds is None else time.monotonic() + seconds, message)

    @property
    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def left(self) -> float | None:
        """Seconds until the instant (never below 0), or None for never."""
        return None if self.at is None else max(self.at - time.monotonic(), 0.0)

    def check(self) -> None:
        """Raise TimeoutError once the instant has passed."""
        if self.passed:
            raise TimeoutError(self.message)


class AsyncDeadline(_Instant):
    """Within ``async with``, whatever is awaited at the instant is cancelled and TimeoutError raised."""

    _scope: asyncio.Timeout | None = None

    async def __aenter__(self) -> AsyncDeadline:
        self._scope = asyncio.timeout(self.left())
        await self._scope.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._scope is not None
        try:
            await self._scope.__aexit__(kind, error, trace)
        except TimeoutError as exc:
            raise TimeoutError(self.message) from exc

    async def cut(self, source: EventSource) -> AsyncIterator[ServerSentEvent]:
        """The stream's events until the instant, ending quietly then even while none arrives."""
        events = source.aiter_sse()
        try:
            while True:
                # Only the wait for the next event is bounded, never the consumer's turn between events.
                scope = asyncio.timeout(self.left())
                try:
                    async with scope:
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if scope.expired():
                        return
                    raise
                yield event
        finally:
            await events.aclose()


class Deadline(_Instant):
    """Blocking code cannot be interrupted: ``with`` only marks the wait, which checks the instant between steps."""

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def cut(self, source: EventSource) -> Iterator[ServerSentEvent]:
        """The stream's events until the instant, ending quietly then even while none arrives."""
        # Keep-alives are comments that never reach this loop: only closing the answer stops a quiet stream.
        watchdog = None
        if self.at is not None:
            watchdog = threading.Timer(self.left() or 0.0, source.response.close)
            watchdog.daemon = True
            watchdog.start()
        try:
            yield from source.iter_sse()
        except (httpx.StreamError, httpx.TransportError):
            if not self.passed:
                raise  # the watchdog closed it only once the instant had come
        finally:
            if watchdog is not None:
                watchdog.cancel()
