"""The web UI's gate: a session cookie opens every page but the public ones, and every change needs its CSRF token.

The cookie holds a session's secret (never an API key or bearer token: those are for scripts and
are not looked at here). A request without a live session is sent to the login page (a GET) or
refused (anything else). A request that changes something must also carry the session's CSRF
token, in the ``X-CSRF-Token`` header (fetch) or the ``csrf`` field of a urlencoded form, and must
not come from another site.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qs, quote

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.deps import Deps
from services.gateway.domain.browser_sessions import find_session
from services.gateway.plumbing.auth import Principal
from shared.errors import AppError, BadCredentials, Forbidden, Unauthorized
from shared.store.sessions import BrowserSession

SESSION_COOKIE = "quern_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024  # the UI's own forms are small; files go by fetch, with the header


def surface_path(scope: Scope) -> str:
    """The request's path within the UI (without its mount's prefix)."""
    path, mounted = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(mounted) :] if mounted and path.startswith(mounted) else path


def same_site(headers: Headers, scope: Scope) -> bool:
    """Whether the browser says the request comes from the UI's own origin (absent headers are not evidence)."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    return origin is None or origin == f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


async def buffered_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


def replaying(body: bytes) -> Receive:
    """A receive callable that hands the app a body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class SessionGate:
    """ASGI middleware of the UI: sessions for every path but the ``public`` prefixes, CSRF for every change."""

    def __init__(
        self, app: ASGIApp, *, public: tuple[str, ...], refuse: Callable[[Request, AppError], Response]
    ) -> None:
        self.app = app
        self.public = public
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = surface_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith(self.public):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        d = cast(Deps, scope["state"]["deps"])
        session = await find_session(sessions=d.stores.sessions, secret=request.cookies.get(SESSION_COOKIE, ""))
        who = None if session is None else await self.principal(d, session)
        if session is None or who is None:
            if scope["method"] in SAFE_METHODS:
                answer: Response = RedirectResponse(f"{scope.get('root_path', '')}/login?next={quote(path)}", 303)
            else:
                answer = self.refuse(request, Unauthorized("sign in first"))
            await answer(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            token, receive = await self.csrf_token(scope, receive)
            if not same_site(request.headers, scope) or not hmac.compare_digest(token, session.csrf):
                await self.refuse(request, Forbidden("the form is stale or came from elsewhere: reload the page"))(
                    scope, receive, send
                )
                return
        scope["state"]["principal"] = who
        scope["state"]["ui_session"] = session
        structlog.contextvars.bind_contextvars(user=who.username)
        await self.app(scope, receive, send)

    @staticmethod
    async def principal(d: Deps, session: BrowserSession) -> Principal | None:
        """The session's user, unless they were deleted or disabled, or their sessions ended, since it began."""
        try:
            return await d.authenticator.admitted(session.user_id, issued=session.created, key_id=None)
        except BadCredentials:
            return None

    @staticmethod
    async def csrf_token(scope: Scope, receive: Receive) -> tuple[str, Receive]:
        """The CSRF token the request carries ("" if none), and the receive that still yields its body."""
        headers = Headers(scope=scope)
        if CSRF_HEADER in headers:
            return headers[CSRF_HEADER], receive
        if headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            return "", receive
        body = await buffered_body(receive, MAX_FORM_BYTES)
        if body is None:
            return "", replaying(b"")
        fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        return (fields.get(CSRF_FIELD) or [""])[0], replaying(body)


def session_of(request: Request) -> BrowserSession:
    """The session this request came with."""
    return cast(BrowserSession, request.state.ui_session)
