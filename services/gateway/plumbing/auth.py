"""Who is calling: the principal behind a login token or API key, and the middleware that requires one.

Every request to a surface but its public paths must carry ``Authorization: Bearer <token or
API key>`` (or ``X-API-Key``); the middleware resolves it to a ``Principal`` before any handler
runs, so a new endpoint is protected without anyone remembering to protect it. Users see only
their own resources; admins see everyone's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.domain.accounts import Caller
from services.gateway.domain.credentials import KEY_PREFIX, read_token, verified_key
from shared.errors import AppError, BadCredentials, Forbidden, NotFound, Unauthorized
from shared.models import Role, User
from shared.store.accounts import AccountStore

MAX_CACHED_USERS = 10_000  # the user cache is emptied past this, so it cannot grow without bound


def require_admin(who: Principal) -> None:
    """Forbidden unless the caller is an admin."""
    if not who.is_admin:
        raise Forbidden()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, and what their credential was: a login token or UI session issued at
    ``issued``, or the API key ``key_id`` (what a long-lived answer checks again while it lasts)."""

    user_id: str
    username: str
    role: Role
    issued: datetime | None = None
    key_id: str | None = None

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


def admit(user: User, *, issued: datetime | None) -> None:
    """BadCredentials if the user may not call now: disabled, or their tokens ended after ``issued``."""
    if user.disabled:
        raise BadCredentials("this account is disabled")
    if issued is not None and user.tokens_valid_after is not None and issued < user.tokens_valid_after:
        raise BadCredentials("the token was revoked; log in again")


class Authenticator:
    """Resolves credentials to principals.

    API keys are read on every request, so a revoked key is refused at once. Users are cached for
    ``cache_seconds``: a change made through this gateway is seen at once (it forgets the user), one
    made through another replica within ``cache_seconds``. Long-lived answers check again every
    ``recheck_seconds``, reading afresh.
    """

    def __init__(self, accounts: AccountStore, secret: str, *, cache_seconds: float, recheck_seconds: float) -> None:
        self.accounts = accounts
        self.secret = secret
        self.cache_seconds = cache_seconds
        self.recheck_seconds = recheck_seconds
        self._users: dict[str, tuple[float, User]] = {}

    async def user(self, user_id: str, *, fresh: bool = False) -> User:
        """The user (read at most ``cache_seconds`` ago unless ``fresh``); BadCredentials if there is none."""
        cached = self._users.get(user_id)
        if not fresh and cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            user = await self.accounts.get_user(user_id)
        except NotFound:
            self._users.pop(user_id, None)
            raise BadCredentials("the user no longer exists") from None
        if self.cache_seconds > 0:
            if len(self._users) > MAX_CACHED_USERS:
                self._users.clear()
            self._users[user_id] = (time.monotonic() + self.cache_seconds, user)
        return user

    def forget(self, user_id: str) -> None:
        """Drop the cached user: this gateway changed them (disabled, password, tokens ended)."""
        self._users.pop(user_id, None)

    async def principal(self, scope: Scope) -> Principal:
        """The caller behind the request's credential; Unauthorized or BadCredentials if none is good."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            credential = headers.get("x-api-key", "")
        credential = credential.strip()
        if not credential:
            raise Unauthorized()
        if credential.startswith(KEY_PREFIX):
            key = await verified_key(credential, accounts=self.accounts)
            return await self.admitted(key.owner, issued=None, key_id=key.id)
        claims = read_token(credential, secret=self.secret)
        return await self.admitted(claims.user_id, issued=claims.issued, key_id=None)

    async def admitted(self, user_id: str, *, issued: datetime | None, key_id: str | None) -> Principal:
        """The principal of ``user_id`` with a credential issued at ``issued`` (or key ``key_id``), if still good."""
        user = await self.user(user_id)
        admit(user, issued=issued)
        return Principal(user_id=user.id, username=user.username, role=user.role, issued=issued, key_id=key_id)

    async def recheck(self, who: Principal) -> None:
        """BadCredentials once the caller's credential has lapsed: key revoked, user gone or disabled, tokens ended."""
        if who.key_id is not None:
            try:
                key = await self.accounts.get_key(who.key_id)
            except NotFound:
                raise BadCredentials("the API key is not valid") from None
            if key.revoked is not None:
                raise BadCredentials("the API key was revoked")
        admit(await self.user(who.user_id, fresh=True), issued=who.issued)

    def watch(self, who: Principal) -> Callable[[], Awaitable[None]]:
        """A check for a long-lived answer to await often: every ``recheck_seconds`` it rechecks ``who``."""
        due = time.monotonic() + self.recheck_seconds

        async def check() -> None:
            nonlocal due
            if time.monotonic() >= due:
                await self.recheck(who)
                due = time.monotonic() + self.recheck_seconds

        return check


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


def authenticator(request: Request) -> Authenticator:
    """The gateway's authenticator."""
    return cast(Authenticator, request.state.deps.authenticator)


def credential_watch(request: Request) -> Callable[[], Awaitable[None]]:
    """For a long-lived answer (an event stream): the check that ends it once the caller's credential lapses."""
    return authenticator(request).watch(principal(request))


def client_address(request: Request) -> str:
    """The client's address: the TCP peer's, or what a proxy trusted by ``FORWARDED_ALLOW_IPS`` says it is."""
    return request.client.host if request.client else "unknown"
