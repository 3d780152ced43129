"""Users and their accounts: creating them, the first admin, logging in, who may see or manage whom, keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.gateway.domain.credentials import hash_password, issue_token, new_api_key, password_matches
from services.gateway.domain.hashing import HashingPool
from services.gateway.domain.login_limits import LoginLimits
from shared.errors import BadCredentials, Conflict, Duplicate, Forbidden, Invalid, NotFound, Violation
from shared.models import ApiKey, Role, User, new_id, utcnow
from shared.store.accounts import AccountStore

log = structlog.get_logger()


@dataclass(frozen=True)
class Caller:
    """Who asks: a user, who sees and manages only their own account, or an admin, who manages everyone's."""

    user_id: str
    is_admin: bool


@dataclass(frozen=True)
class AccessToken:
    """A signed bearer token and when it expires."""

    token: str
    expires: datetime


async def create_user(
    *, accounts: AccountStore, hashing: HashingPool, username: str, password: str, role: Role
) -> User:
    """Add a user; Conflict if the name is taken."""
    password_hash = await hashing.run(hash_password, password)
    user = User(id=new_id(), username=username, password_hash=password_hash, role=role, created=utcnow())
    try:
        await accounts.insert_user(user)
    except Duplicate:
        raise Duplicate(f"the username {username!r} is taken") from None
    log.info("user_created", user_id=user.id, username=username, role=role.value)
    return user


async def ensure_admin(*, accounts: AccountStore, hashing: HashingPool, username: str, password: str) -> None:
    """Create the configured first admin unless a user of that name exists (its password is left alone)."""
    if await accounts.find_user(username) is None:
        try:
            await create_user(accounts=accounts, hashing=hashing, username=username, password=password, role=Role.ADMIN)
        except Duplicate:
            pass  # another gateway replica created it first


@dataclass(frozen=True)
class LoginGuard:
    """What a login goes through before its password is checked: the hashing pool and the failed-login limits."""

    hashing: HashingPool
    limits: LoginLimits


async def authenticate(
    *, accounts: AccountStore, guard: LoginGuard, address: str, username: str, password: str
) -> User:
    """The enabled user with this username and password; BadCredentials, the same for every reason, otherwise.

    TooManyLogins when this address, or this account from this address, failed too often lately.
    """
    guard.limits.check(address, username)
    user = await accounts.find_user(username)
    # The password is checked before anything else, so an unknown or disabled user takes as long to refuse.
    if not await guard.hashing.run(password_matches, user, password) or user is None or user.disabled:
        guard.limits.failed(address, username)
        log.info("login_refused", username=username, address=address)
        raise BadCredentials("wrong username or password")
    return user


async def log_in(
    *,
    accounts: AccountStore,
    guard: LoginGuard,
    address: str,
    username: str,
    password: str,
    secret: str,
    ttl_seconds: int,
) -> AccessToken:
    """A bearer token for this username and password; BadCredentials, the same for every reason, otherwise."""
    user = await authenticate(accounts=accounts, guard=guard, address=address, username=username, password=password)
    token, expires = issue_token(user, secret=secret, ttl_seconds=ttl_seconds)
    log.info("login", user_id=user.id)
    return AccessToken(token, expires)


def check_reach(user_id: str, caller: Caller) -> None:
    """NotFound for another user's account unless the caller is an admin: to a user, it does not exist."""
    if not caller.is_admin and user_id != caller.user_id:
        raise NotFound(f"no user {user_id}")


def check_may_manage(user_id: str, caller: Caller) -> None:
    """NotFound for another user's account, then Forbidden unless the caller is an admin."""
    check_reach(user_id, caller)
    if not caller.is_admin:
        raise Forbidden()


async def describe_user(*, accounts: AccountStore, user_id: str, caller: Caller) -> User:
    """A user as the caller may see it: an admin sees anyone, a user themselves only."""
    check_reach(user_id, caller)
    return await accounts.get_user(user_id)


async def disable_user(*, accounts: AccountStore, user_id: str, caller: Caller) -> User:
    """Disable a user's account (its resources are kept); an admin cannot disable their own."""
    check_may_manage(user_id, caller)
    if user_id == caller.user_id:
        raise Conflict("an admin cannot disable their own account")
    user = await accounts.set_user_disabled(user_id, True)
    log.info("user_disabled", user_id=user.id)
    return user


async def enable_user(*, accounts: AccountStore, user_id: str, caller: Caller) -> User:
    """Enable a disabled user's account again (admins only)."""
    check_may_manage(user_id, caller)
    user = await accounts.set_user_disabled(user_id, False)
    log.info("user_enabled", user_id=user.id)
    return user


async def change_password(
    *, accounts: AccountStore, hashing: HashingPool, user_id: str, current: str, new: str
) -> User:
    """Replace the user's password, given their current one; every token and UI session of theirs ends."""
    user = await accounts.get_user(user_id)
    # argon2 takes tens of milliseconds of CPU: on the gateway's bounded hashing pool, as at login.
    if not await hashing.run(password_matches, user, current):
        log.info("password_change_refused", user_id=user_id)
        raise Invalid(violations=[Violation("/current_password", "is not the account's password")])
    if new == current:
        raise Invalid(violations=[Violation("/new_password", "must differ from the current password")])
    user = await accounts.set_password(user_id, await hashing.run(hash_password, new))
    log.info("password_changed", user_id=user_id)
    return user


async def reset_password(
    *, accounts: AccountStore, hashing: HashingPool, user_id: str, password: str, caller: Caller
) -> User:
    """Set another user's password (admins only); every token and UI session of theirs ends."""
    check_may_manage(user_id, caller)
    if user_id == caller.user_id:
        raise Conflict("an admin changes their own password with their current one, at /v1/me/password")
    user = await accounts.set_password(user_id, await hashing.run(hash_password, password))
    log.info("password_reset", user_id=user_id)
    return user


async def log_out_everywhere(*, accounts: AccountStore, user_id: str) -> User:
    """End every login token and UI session of the user's issued until now (API keys are revoked one by one)."""
    user = await accounts.revoke_tokens(user_id)
    log.info("tokens_revoked", user_id=user_id)
    return user


async def limit_user(
    *, accounts: AccountStore, wake: Callable[[], None], user_id: str, max_running: int | None
) -> User:
    """Set a user's own limit of jobs running at once (None: the deployment's); the dispatcher looks again."""
    user = await accounts.set_user_limit(user_id, max_running)
    log.info("user_limit_set", user_id=user.id, max_running=user.max_running)
    wake()  # a changed limit may let waiting jobs start now, not at the next pass
    return user


async def override_quotas(*, accounts: AccountStore, user_id: str, quotas: dict[str, int | None]) -> User:
    """Set a user's own quotas by name (None: back to the deployment's); each gateway applies them within seconds."""
    user = await accounts.set_user_quotas(user_id, quotas)
    log.info("user_quotas_set", user_id=user.id, **{f"quota_{name}": value for name, value in quotas.items()})
    return user


async def create_key(*, accounts: AccountStore, owner: str, name: str) -> tuple[ApiKey, str]:
    """A new API key of ``owner``'s, and its full secret: shown once, never stored."""
    key, secret = new_api_key(owner, name)
    await accounts.insert_key(key)
    log.info("api_key_created", key_id=key.id)
    return key, secret
