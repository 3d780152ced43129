"""Credentials: password hashes, signed login tokens (JWT) and API keys."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import BadCredentials, NotFound
from shared.models import ApiKey, User, new_id, utcnow
from shared.store.accounts import AccountStore

KEY_PREFIX = "qk_"
# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): argon2-cffi's default takes 64 MiB per
# login, which costs the gateway's memory budget and lets a burst of logins exhaust it. Hashes
# made with other parameters still verify: each hash records its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a login takes as long whether or not it exists."""
    return _hasher.hash(secrets.token_urlsafe(16))


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


async def key_owner(credential: str, *, accounts: AccountStore) -> str:
    key_id, _, secret = credential.removeprefix(KEY_PREFIX).partition(".")
    if not key_id or not secret:
        raise BadCredentials("the API key is malformed")
    try:
        key = await accounts.get_key(key_id)
    except NotFound:
        raise BadCredentials("the API key is not valid") from None
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if key.revoked is not None or not hmac.compare_digest(digest, key.secret_sha256):
        raise BadCredentials("the API key is not valid")
    return key.owner
