"""The connection to one quern gateway: its HTTP client, the retry policy, and requests that raise ApiError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

import httpx

from quern.errors import Unreachable
from quern.transport import DEFAULT_URL, M, Retries, checked, items, parsed, query


class AsyncConnection:
    """A connection to one quern gateway, authenticated by a token or an API key (``qk_...``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "quern-sdk/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers, transport=transport)
        self.retries = retries or Retries()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    close = aclose  # async only: the blocking client's name for it, awaited

    async def request(
        self, method: str, path: str, *, body: Callable[[], Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request, retrying as ``retries`` says; an error answer raises ApiError.

        ``body`` makes the request content afresh for each attempt (a file stream, say).
        """
        headers = kwargs.pop("headers", {})
        try:
            async for attempt in self.retries.attempts_at(method, headers):
                with attempt:
                    content = None if body is None else body()
                    return checked(await self.http.request(method, path, headers=headers, content=content, **kwargs))
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {self.http.base_url.join(path)}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover  # stamina returns or raises

    async def get(self, model: type[M], path: str, **params: Any) -> M:
        """GET ``path`` as ``model``."""
        return parsed(model, await self.request("GET", path, params=query(**params)))

    async def post(self, model: type[M], path: str, json: Any = None, **kwargs: Any) -> M:
        """POST ``json`` to ``path``, the answer as ``model``."""
        return parsed(model, await self.request("POST", path, json=json, **kwargs))

    async def delete(self, path: str, **params: Any) -> None:
        """DELETE ``path``."""
        await self.request("DELETE", path, params=query(**params))

    async def pages(self, model: type[M], path: str, **params: Any) -> AsyncIterator[M]:
        """Every item of a paginated list, fetching the next page as the iteration reaches it."""
        cursor: str | None = None
        while True:
            page = await self.request("GET", path, params=query(**params, cursor=cursor))
            found, cursor = items(model, page.json())
            for item in found:
                yield item
            if cursor is None:
                return
