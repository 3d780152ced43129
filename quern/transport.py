"""What the sync and async clients share: the retry policy, and turning answers into results or errors.

A request is retried when the service says to come back (429, 503, honouring ``Retry-After``)
and when it could not be reached. A request that may have been received already (a read
timeout, a connection dropped mid-answer) is retried only if it is safe to repeat: a GET,
HEAD, PUT or DELETE, or a POST carrying an ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import stamina
from pydantic import BaseModel

from quern.errors import ApiError, OverQuota, TooManyRequests, Unavailable

M = TypeVar("M", bound=BaseModel)
RETRIED = (TooManyRequests, Unavailable)  # 429 and 503: the service asks to come back
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_AFTER = 300.0  # a Retry-After is honoured up to five minutes
STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)  # the gateway sends a keep-alive every 10 s on event streams


@dataclass(frozen=True)
class Retries:
    """How hard to try: attempts in all, the longest total time, and the backoff bounds (seconds)."""

    attempts: int = 6
    timeout: float = 120.0
    wait_initial: float = 0.5
    wait_max: float = 15.0

    def attempts_at(self, method: str, headers: httpx.Headers | dict[str, str]) -> Any:
        """stamina's retry context for one request: iterate it with ``for`` (sync) or ``async for``."""
        return stamina.retry_context(
            on=self.hook(method, headers),
            attempts=self.attempts,
            timeout=self.timeout,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
        )

    def hook(self, method: str, headers: httpx.Headers | dict[str, str]) -> Callable[[Exception], bool | float]:
        """The ``on`` hook for stamina: whether (or after how long) to retry this request after ``exc``."""
        repeatable = method.upper() in SAFE_METHODS or "Idempotency-Key" in headers

        def on(exc: Exception) -> bool | float:
            if isinstance(exc, ApiError):
                if not isinstance(exc, RETRIED) or isinstance(exc, OverQuota):
                    return False  # a quota lasts until the caller frees some: waiting a few seconds will not do
                return min(exc.retry_after, MAX_RETRY_AFTER) if exc.retry_after is not None else True
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                return True  # never reached the service: always safe to send again
            return repeatable and isinstance(exc, httpx.TransportError)

        return on


def checked(response: httpx.Response) -> httpx.Response:
    """The response itself if it is not an error; ApiError otherwise."""
    if response.status_code >= 400:
        raise ApiError.from_response(response)
    return response


def parsed(model: type[M], response: httpx.Response) -> M:
    """The response body as ``model``."""
    return model.model_validate(checked(response).json())


def items(model: type[M], body: dict[str, Any]) -> tuple[list[M], str | None]:
    """A page's items as ``model``, and the cursor of the next page (None on the last)."""
    return [model.model_validate(item) for item in body["items"]], body.get("next_cursor")


def query(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None); lists repeat their key."""
    return {key: value for key, value in params.items() if value is not None and value != []}
