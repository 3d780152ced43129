"""Signing a browser in and out: a session behind a secret cookie, with its own CSRF token, that expires.

A session is opened only by a username and password, never by an API key or bearer token, so
a credential made for scripts cannot become a browser's ambient authority.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import structlog

from services.gateway.domain.accounts import LoginGuard, authenticate
from shared.models import utcnow
from shared.store.accounts import AccountStore
from shared.store.sessions import BrowserSession, SessionStore, session_digest

log = structlog.get_logger()


async def open_session(
    *,
    accounts: AccountStore,
    sessions: SessionStore,
    guard: LoginGuard,
    address: str,
    username: str,
    password: str,
    ttl_seconds: int,
) -> tuple[BrowserSession, str]:
    """A new session for this username and password, and the secret its cookie carries; BadCredentials otherwise."""
    user = await authenticate(accounts=accounts, guard=guard, address=address, username=username, password=password)
    secret, now = secrets.token_urlsafe(32), utcnow()
    session = BrowserSession(
        digest=session_digest(secret),
        user_id=user.id,
        csrf=secrets.token_urlsafe(32),
        created=now,
        expires=now + timedelta(seconds=ttl_seconds),
    )
    await sessions.insert_session(session)
    log.info("ui_login", user_id=user.id)
    return session, secret


async def find_session(*, sessions: SessionStore, secret: str) -> BrowserSession | None:
    """The unexpired session a cookie's secret opens, if any."""
    return await sessions.find_session(session_digest(secret)) if secret else None


async def close_session(*, sessions: SessionStore, secret: str) -> None:
    """End the session of a cookie's secret: the cookie opens nothing from now on."""
    await sessions.delete_session(session_digest(secret))
    log.info("ui_logout")
