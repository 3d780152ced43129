"""An API surface: its endpoints mounted at a path, behind its own credentials check and error rendering.

Every surface (the native API, and facades such as GA4GH TES) is mounted this way, so each
decides which of its paths are public and how its errors look, while the gateway's request log
and the lifespan's clients are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from services.gateway.plumbing.auth import Authentication
from services.gateway.plumbing.endpoints import Endpoint
from shared.errors import AppError

ErrorHandler = Callable[[Request, Exception], Any]


def mount(
    path: str,
    endpoints: Sequence[Endpoint],
    *,
    handlers: Mapping[Any, ErrorHandler],
    refuse: Callable[[Request, AppError], Response],
) -> Mount:
    """``endpoints`` under ``path``; all but the public ones need credentials, refused with ``refuse``.

    ``handlers`` render the surface's errors (by exception class or status), as Starlette's
    ``exception_handlers`` do for a whole app.
    """
    public = frozenset(endpoint.path for endpoint in endpoints if endpoint.public)
    return Mount(
        path,
        routes=[endpoint.route() for endpoint in endpoints],
        middleware=[
            Middleware(ExceptionMiddleware, handlers=dict(handlers)),
            Middleware(Authentication, public=public, refuse=refuse),
        ],
    )
