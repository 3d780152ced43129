"""Who is calling: login tokens (JWT), API keys, and the middleware that requires one on every path but a few.

Every request except ``PUBLIC_PATHS`` must carry ``Authorization: Bearer <token or API key>``
(or ``X-API-Key``); the middleware resolves it to a ``Principal`` before any handler runs, so a
new endpoint is protected without anyone remembering to protect it. Users see only their own
resources; admins see everyone's.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import jwt
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.problems import render, status_of
from shared.errors import AppError, BadCredentials, Unauthorized
from shared.models import ApiKey, Role, User, new_id, utcnow
from shared.store.accounts import AccountStore

log = structlog.get_logger()
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/v1/auth/login"})
KEY_PREFIX = "qk_"
USER_CACHE_SECONDS = 10.0
# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): argon2-cffi's default takes 64 MiB per
# login, which costs the gateway's memory budget and lets a burst of logins exhaust it. Hashes
# made with other parameters still verify: each hash records its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a login takes as long whether or not it exists."""
    return _hasher.hash(secrets.token_urlsafe(16))


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


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is the user's, taking as long when there is no such user."""
    try:
        return _hasher.verify(user.password_hash if user else _dummy_hash(), password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(user: User, *, secret: str, ttl_seconds: int) -> tuple[str, datetime]:
    """A signed bearer token for ``user`` and when it expires."""
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    claims = {"sub": user.id, "role": user.role.value, "exp": expires, "iat": datetime.now(UTC), "typ": "access"}
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def read_token(token: str, *, secret: str) -> str:
    """The user id a valid, unexpired token was issued to; Unauthorized otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp", "typ"]})
    except jwt.ExpiredSignatureError:
        raise BadCredentials("the token has expired; log in again") from None
    except jwt.PyJWTError:
        raise BadCredentials("the token is not valid") from None
    if claims["typ"] != "access":
        raise BadCredentials("the token is not valid")
    return str(claims["sub"])


def new_api_key(owner: str, name: str) -> tuple[ApiKey, str]:
    """A new key record and the full secret, which is shown once and never stored."""
    key_id, secret = new_id(), secrets.token_urlsafe(32)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return ApiKey(
        id=key_id, owner=owner, name=name, secret_sha256=digest, created=utcnow()
    ), f"{KEY_PREFIX}{key_id}.{secret}"


async def _key_owner(credential: str, *, accounts: AccountStore) -> str:
    key_id, _, secret = credential.removeprefix(KEY_PREFIX).partition(".")
    if not key_id or not secret:
        raise BadCredentials("the API key is malformed")
    try:
        key = await accounts.get_key(key_id)
    except AppError as exc:
        if status_of(exc) == 404:
            raise BadCredentials("the API key is not valid") from None
        raise
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if key.revoked is not None or not hmac.compare_digest(digest, key.secret_sha256):
        raise BadCredentials("the API key is not valid")
    return key.owner


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
        except AppError as exc:
            if status_of(exc) == 404:
                raise BadCredentials("the user no longer exists") from None
            raise
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
            user_id = await _key_owner(credential, accounts=self.accounts)
        else:
            user_id = read_token(credential, secret=self.secret)
        user = await self.user(user_id)
        if user.disabled:
            raise BadCredentials("this account is disabled")
        return Principal(user_id=user.id, username=user.username, role=user.role)


class Authentication:
    """ASGI middleware: every path but ``PUBLIC_PATHS`` needs a valid credential (401 problem otherwise)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        authenticator = cast(Authenticator, scope["state"]["deps"].authenticator)
        try:
            who = await authenticator.principal(scope)
        except AppError as exc:
            await render(Request(scope), exc)(scope, receive, send)
            return
        scope["state"]["principal"] = who
        structlog.contextvars.bind_contextvars(user=who.username)
        await self.app(scope, receive, send)


def principal(request: Request) -> Principal:
    """The authenticated caller of this request."""
    return cast(Principal, request.state.principal)
