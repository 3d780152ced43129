"""Users and their accounts: creating them, the first admin."""

from __future__ import annotations

import structlog

from services.gateway.domain.credentials import hash_password, new_api_key
from shared.errors import Duplicate
from shared.models import ApiKey, Role, User, new_id, utcnow
from shared.store.accounts import AccountStore

log = structlog.get_logger()


async def create_user(*, accounts: AccountStore, username: str, password: str, role: Role) -> User:
    """Add a user; Conflict if the name is taken."""
    user = User(id=new_id(), username=username, password_hash=hash_password(password), role=role, created=utcnow())
    try:
        await accounts.insert_user(user)
    except Duplicate:
        raise Duplicate(f"the username {username!r} is taken") from None
    log.info("user_created", user_id=user.id, username=username, role=role.value)
    return user


async def ensure_admin(*, accounts: AccountStore, username: str, password: str) -> None:
    """Create the configured first admin unless a user of that name exists (its password is left alone)."""
    if await accounts.find_user(username) is None:
        try:
            await create_user(accounts=accounts, username=username, password=password, role=Role.ADMIN)
        except Duplicate:
            pass  # another gateway replica created it first


async def create_key(*, accounts: AccountStore, owner: str, name: str) -> tuple[ApiKey, str]:
    """A new API key of ``owner``'s, and its full secret: shown once, never stored."""
    key, secret = new_api_key(owner, name)
    await accounts.insert_key(key)
    log.info("api_key_created", key_id=key.id)
    return key, secret
