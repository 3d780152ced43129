"""Who is calling: the principal behind a login token or API key, and the middleware that requires one.

Every request to a surface but its public paths must carry ``Authorization: Bearer <token or
API key>`` (or ``X-API-Key``); the middleware resolves it to a ``Principal`` before any handler
runs, so a new endpoint is protected without anyone remembering to protect it. Users see only
their own resources; admins see everyone's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.domain.accounts import Caller
from services.gateway.domain.credentials import KEY_PREFIX, key_owner, read_token
from shared.errors import AppError, BadCredentials, Forbidden, NotFound, Unauthorized
from shared.models import Role, User
from shared.store.accounts import AccountStore


def require_admin(who: Principal) -> None:
    """Forbidden unless the caller is an admin."""
    if not who.is_admin:
        raise Forbidden()


USER_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def owner_filter(self) -> str | None:
        """What to filter stored resources by: the caller's id, or None for an admin, who sees all."""
        return None if self.is_admin else self.user_id

    @property
    def caller(self) -> Caller:
        """The caller as domain operations take it."""
        return Caller(user_id=self.user_id, is_admin=self.is_admin)


class Authenticator:
    """Resolves credentials to principals, caching user records briefly so disabling takes effect in seconds."""

    def __init__(self, accounts: AccountStore, secret: str) -> None:
        self.accounts = accounts
        self.secret = secret
        self._users: dict[str, tuple[float, User]] = {}

    async def user(self, user_id: str) -> User:
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            user = await self.accounts.get_user(user_id)
        except NotFound:
            raise BadCredentials("the user no longer exists") from None
        self._users[user_id] = (time.monotonic() + USER_CACHE_SECONDS, user)
        return user

    async def principal(self, scope: Scope) -> Principal:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            credential = headers.get("x-api-key", "")
        credential = credential.strip()
        if not credential:
            raise Unauthorized()
        if credential.startswith(KEY_PREFIX):
            user_id = await key_owner(credential, accounts=self.accounts)
        else:
            user_id = read_token(credential, secret=self.secret)
        user = await self.user(user_id)
        if user.disabled:
            raise BadCredentials("this account is disabled")
        return Principal(user_id=user.id, username=user.username, role=user.role)


def _surface_path(scope: Scope) -> str:
    """The request's path within the surface it reached (without the mount's prefix)."""
    path, mounted = scope["path"], scope.get("root_path", "")
    return str(path[len(mounted) :] if mounted and path.startswith(mounted) else path)


class Authentication:
    """ASGI middleware of a surface: every path but its ``public`` ones needs a valid credential.

    Paths are the surface's own (without its mount's prefix); a refused credential is answered
    with the surface's own rendering of the error.
    """

    def __init__(
        self, app: ASGIApp, *, public: frozenset[str], refuse: Callable[[Request, AppError], Response]
    ) -> None:
        self.app = app
        self.public = public
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _surface_path(scope) in self.public:
            await self.app(scope, receive, send)
            return
        authenticator = cast(Authenticator, scope["state"]["deps"].authenticator)
        try:
            who = await authenticator.principal(scope)
        except AppError as exc:
            await self.refuse(Request(scope), exc)(scope, receive, send)
            return
        scope["state"]["principal"] = who
        structlog.contextvars.bind_contextvars(user=who.username)
        await self.app(scope, receive, send)


def principal(request: Request) -> Principal:
    """The authenticated caller of this request."""
    return cast(Principal, request.state.principal)


def client_address(request: Request) -> str:
    """The client's address: the TCP peer's, or what a proxy trusted by ``FORWARDED_ALLOW_IPS`` says it is."""
    return request.client.host if request.client else "unknown"
