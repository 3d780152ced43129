"""Per-request context: a request id bound to every log line, one summary line per request, and its metrics."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.plumbing.metrics import observe_request
from services.gateway.plumbing.problems import internal_error

log = structlog.get_logger()
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestLog:
    """Bind ``request_id`` (the caller's ``X-Request-ID`` when sane), log ``request`` at the end and count it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
        status = 500
        responding = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Handled here rather than by Starlette's outermost error middleware, so the log line
            # carries request_id and the 500 problem carries X-Request-ID.
            log.exception("unhandled_error")
            if responding:
                raise
            detail = "quern failed to handle this request; it has been logged under its X-Request-ID"
            await internal_error(Request(scope), detail)(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            observe_request(scope, status, seconds)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
