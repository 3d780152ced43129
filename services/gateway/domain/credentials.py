"""Credentials: password hashes, signed login tokens (JWT) and API keys."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TokenClaims:
    """Whom a valid login token was issued to, and when (its user's ``tokens_valid_after`` may end it)."""

    user_id: str
    issued: datetime


def issue_token(user: User, *, secret: str, ttl_seconds: int) -> tuple[str, datetime]:
    """A signed bearer token for ``user`` and when it expires."""
    # ``iat`` keeps its fraction of a second (RFC 7519 allows it), so a token issued just after a
    # password change or "log out everywhere" in the same second is not taken for one from before.
    issued = time.time()
    expires = datetime.fromtimestamp(issued, UTC) + timedelta(seconds=ttl_seconds)
    claims = {"sub": user.id, "role": user.role.value, "exp": expires, "iat": round(issued, 6), "typ": "access"}
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def read_token(token: str, *, secret: str) -> TokenClaims:
    """The user a valid, unexpired token was issued to, and when; BadCredentials otherwise."""
    try:
        # iat is not checked against this replica's clock: another replica's, a little ahead, may have issued it.
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub", "exp", "typ"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise BadCredentials("the token has expired; log in again") from None
    except jwt.PyJWTError:
        raise BadCredentials("the token is not valid") from None
    issued = claims.get("iat")  # ours all carry it: without it, tokens_valid_after could not end the token
    if claims["typ"] != "access" or isinstance(issued, bool) or not isinstance(issued, int | float):
        raise BadCredentials("the token is not valid")
    try:
        return TokenClaims(user_id=str(claims["sub"]), issued=datetime.fromtimestamp(issued, UTC))
    except (OverflowError, OSError, ValueError):
        raise BadCredentials("the token is not valid") from None


def new_api_key(owner: str, name: str) -> tuple[ApiKey, str]:
    """A new key record and the full secret, which is shown once and never stored."""
    key_id, secret = new_id(), secrets.token_urlsafe(32)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return ApiKey(
        id=key_id, owner=owner, name=name, secret_sha256=digest, created=utcnow()
    ), f"{KEY_PREFIX}{key_id}.{secret}"


async def verified_key(credential: str, *, accounts: AccountStore) -> ApiKey:
    """The unrevoked API key this credential is; BadCredentials otherwise (read afresh: revoking works at once)."""
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
    return key
