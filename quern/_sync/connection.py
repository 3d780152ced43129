# Generated from quern/_async/connection.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""The connection to one quern gateway: its HTTP client, the retry policy, and requests that raise ApiError."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from quern.errors import Unreachable
from quern.transport import DEFAULT_URL, M, Retries, checked, items, parsed, query


class Connection:
    """A connection to one quern gateway, authenticated by a token or an API key (``qk_...``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "quern-sdk/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers, transport=transport)
        self.retries = retries or Retries()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def request(
        self, method: str, path: str, *, body: Callable[[], Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request, retrying as ``retries`` says; an error answer raises ApiError.

        ``body`` makes the request content afresh for each attempt (a file stream, say).
        """
        headers = kwargs.pop("headers", {})
        try:
            for attempt in self.retries.attempts_at(method, headers):
                with attempt:
                    content = None if body is None else body()
                    return checked(self.http.request(method, path, headers=headers, content=content, **kwargs))
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {self.http.base_url.join(path)}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover  # stamina returns or raises

    def get(self, model: type[M], path: str, **params: Any) -> M:
        """GET ``path`` as ``model``."""
        return parsed(model, self.request("GET", path, params=query(**params)))

    def post(self, model: type[M], path: str, json: Any = None, **kwargs: Any) -> M:
        """POST ``json`` to ``path``, the answer as ``model``."""
        return parsed(model, self.request("POST", path, json=json, **kwargs))

    def delete(self, path: str, **params: Any) -> None:
        """DELETE ``path``."""
        self.request("DELETE", path, params=query(**params))

    def pages(self, model: type[M], path: str, **params: Any) -> Iterator[M]:
        """Every item of a paginated list, fetching the next page as the iteration reaches it."""
        cursor: str | None = None
        while True:
            page = self.request("GET", path, params=query(**params, cursor=cursor))
            found, cursor = items(model, page.json())
            yield from found
            if cursor is None:
                return
