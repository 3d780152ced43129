"""Endpoints declared once: each handler with its method, path, route name and OpenAPI operation.

A resource module makes one ``Resource`` and decorates its handlers::

    jobs = Resource("jobs")

    @jobs.endpoint("GET", "/jobs/{job_id}", name="job", summary="A job", answer=JobOut)
    async def describe(request: Request) -> JobOut: ...

A handler returns its answer's model (sent with the operation's status), a ``Reply`` of it
(another status, or headers), or a ready ``Response`` (redirects, streams, no content); mypy
holds the model returned to the one declared. A surface builds its routes and its OpenAPI
document from the same declarations, so neither can name an endpoint the other lacks.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar, overload

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typing_extensions import Unpack

from services.gateway.plumbing.answers import Reply, json_response

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter an operation reads."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    location: str = "query"


class Options(TypedDict, total=False):
    """What an operation declares besides its method, path, summary and answer."""

    name: str  # the route's name, for links to it
    status: int  # the success status (default 200)
    body: type[BaseModel]  # the JSON body it parses
    body_optional: bool
    replay: bool  # also answers 200 with the same model: an earlier request's result
    upload: bool  # the body is a file (raw or multipart form)
    query: tuple[Param, ...]
    errors: tuple[int, ...]  # statuses it may answer besides those every operation of its kind may
    public: bool  # needs no credentials
    media_type: str


@dataclass(frozen=True)
class Endpoint:
    """One method on one path (relative to its surface's mount): its handler and its operation."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    answer: type[BaseModel] | None
    name: str | None = None
    status: int = 200
    body: type[BaseModel] | None = None
    body_optional: bool = False
    replay: bool = False
    upload: bool = False
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False
    media_type: str = "application/json"

    def route(self) -> Route:
        """The Starlette route that serves it."""
        return Route(self.path, self.handler, methods=[self.method], name=self.name)


def _answering(handler: Callable[[Request], Awaitable[Any]], status: int) -> Handler:
    """The handler as Starlette calls it: a returned model or Reply becomes its JSON response."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        result = await handler(request)
        if isinstance(result, Response):
            return result
        if isinstance(result, Reply):
            return json_response(result.body, status=result.status or status, headers=result.headers)
        assert isinstance(result, BaseModel), f"{handler.__qualname__} answered {type(result).__name__}"
        return json_response(result, status=status)

    return endpoint


class Resource:
    """The endpoints of one resource of an API surface, each declared on its handler."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    @overload
    def endpoint(
        self, method: str, path: str, *, summary: str, answer: type[M], **options: Unpack[Options]
    ) -> Callable[[Callable[[Request], Awaitable[M | Reply[M] | Response]]], Handler]: ...

    @overload
    def endpoint(
        self, method: str, path: str, *, summary: str, answer: None, **options: Unpack[Options]
    ) -> Callable[[Handler], Handler]: ...

    def endpoint(
        self, method: str, path: str, *, summary: str, answer: type[BaseModel] | None, **options: Unpack[Options]
    ) -> Callable[[Callable[[Request], Awaitable[Any]]], Handler]:
        """Declare the decorated handler as ``method path``, answering ``answer`` (None: no JSON body)."""

        def declare(handler: Callable[[Request], Awaitable[Any]]) -> Handler:
            served = _answering(handler, options.get("status", 200))
            self.endpoints.append(
                Endpoint(method, path, served, summary=summary, tag=self.tag, answer=answer, **options)
            )
            return served

        return declare
