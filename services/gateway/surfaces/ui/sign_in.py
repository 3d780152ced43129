"""Signing in with a username and password, and out again.

The login form is protected from cross-site posts by a double-submitted token (a cookie of its
own and a hidden field that must match), as no session exists yet to hold one.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.browser_sessions import close_session, open_session
from services.gateway.plumbing.auth import client_address
from services.gateway.surfaces.ui.sessions import CSRF_FIELD, MAX_FORM_BYTES, SESSION_COOKIE, same_site
from services.gateway.surfaces.ui.templates import page
from shared.errors import BadCredentials, Forbidden, TooLarge, TooManyLogins

LOGIN_COOKIE = "quern_login"
LOGIN_COOKIE_SECONDS = 3600


def landing(request: Request, wanted: str | None) -> str:
    """Where to go once signed in: the page asked for when it is one of the UI's, else the jobs."""
    root = request.scope.get("root_path", "")
    if wanted and wanted.startswith("/") and not wanted.startswith("//") and "\\" not in wanted:
        return f"{root}{wanted}"
    return f"{root}/jobs"


def login_form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    """The login page, with a fresh double-submit token in its form and its cookie."""
    token = secrets.token_urlsafe(32)
    answer = page(
        request, "login.html", status=status, login_token=token, error=error, next=request.query_params.get("next", "")
    )
    answer.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_COOKIE_SECONDS,
        path=request.url_for("ui:login").path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return answer


async def show_login(request: Request) -> Response:
    """GET /ui/login."""
    return login_form(request)


async def log_in(request: Request) -> Response:
    """POST /ui/login: a session cookie and the page asked for, or the form again with why not."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise TooLarge("the login form is too large")
    form = await request.form()
    token = str(form.get(CSRF_FIELD, ""))
    if not token or not same_site(request.headers, request.scope):
        raise Forbidden("the login form came from elsewhere: reload the page")
    if not hmac.compare_digest(token, request.cookies.get(LOGIN_COOKIE, "")):
        raise Forbidden("the login form is stale: reload the page")
    d = deps(request)
    try:
        _, secret = await open_session(
            accounts=d.stores.accounts,
            sessions=d.stores.sessions,
            guard=d.logins,
            address=client_address(request),
            username=str(form.get("username", ""))[:64],
            password=str(form.get("password", ""))[:1024],
            ttl_seconds=d.settings.ui_session_ttl_seconds,
        )
    except BadCredentials as exc:
        return login_form(request, error=exc.detail, status=401)
    except TooManyLogins as exc:
        refused = login_form(request, error=exc.detail, status=429)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    answer = signed_in(request, landing(request, str(form.get("next", ""))), secret)
    answer.delete_cookie(LOGIN_COOKIE, path=request.url_for("ui:login").path)
    return answer


def signed_in(request: Request, to: str, secret: str) -> Response:
    """A redirect to ``to`` that hands the browser the cookie of a new session (whose secret is ``secret``)."""
    answer = RedirectResponse(to, status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=deps(request).settings.ui_session_ttl_seconds,
        path=request.scope.get("root_path", "") or "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return answer


async def signed_out(request: Request) -> Response:
    """The request's session ended (its cookie opens nothing any more), and a redirect to the login page."""
    await close_session(sessions=deps(request).stores.sessions, secret=request.cookies.get(SESSION_COOKIE, ""))
    answer = RedirectResponse(request.url_for("ui:login").path, status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path=request.scope.get("root_path", "") or "/")
    return answer


async def log_out(request: Request) -> Response:
    """POST /ui/logout: the session ends, then the login page."""
    return await signed_out(request)
