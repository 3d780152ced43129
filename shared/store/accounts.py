"""Who may call quern: users (with their own running limits) and their API keys."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from shared.models import ApiKey, User, utcnow
from shared.store.database import (
    Database,
    Document,
    Page,
    change_one,
    from_document,
    owner_filter,
    read_one,
    read_page,
    to_document,
    translated,
)


def _revoking() -> Document:
    """The update that moves a user's ``tokens_valid_after`` to now (never back, should clocks disagree)."""
    return {"$max": {"tokens_valid_after": utcnow()}}


class AccountStore:
    """Users and API keys."""

    def __init__(self, database: Database) -> None:
        self._users = database.collection("users")
        self._keys = database.collection("api_keys")

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._users.create_index("username", unique=True)
            await self._keys.create_index([("owner", ASCENDING), ("_id", DESCENDING)])

    async def insert_user(self, user: User) -> None:
        """Record a new user; Conflict if the username is taken."""
        with translated(f"user {user.username}"):
            await self._users.insert_one(to_document(user))

    async def get_user(self, user_id: str) -> User:
        """One user by id, or NotFound."""
        return await read_one(self._users, User, {"_id": user_id}, what=f"user {user_id}", missing=f"no user {user_id}")

    async def find_user(self, username: str) -> User | None:
        """The user with this username, if any."""
        with translated(f"user {username}"):
            doc = await self._users.find_one({"username": username})
        return None if doc is None else from_document(User, doc)

    async def list_users(self, *, limit: int, after: str | None) -> Page[User]:
        """Users, newest first."""
        return await read_page(self._users, User, {}, limit=limit, after=after)

    async def set_user_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable (or re-enable) a user; NotFound if there is none. Disabling also ends their tokens and sessions."""
        if disabled:
            return await self._change_user(user_id, {"$set": {"disabled": True}, **_revoking()})
        return await self._change_user(user_id, {"$set": {"disabled": False}})

    async def set_user_limit(self, user_id: str, max_running: int | None) -> User:
        """Set (or clear, with None) a user's own limit of jobs running at once; NotFound if there is none."""
        return await self._change_user(user_id, {"$set": {"max_running": max_running}})

    async def set_password(self, user_id: str, password_hash: str) -> User:
        """Replace a user's password hash and end their tokens and sessions; NotFound if there is none."""
        return await self._change_user(user_id, {"$set": {"password_hash": password_hash}, **_revoking()})

    async def revoke_tokens(self, user_id: str) -> User:
        """End every login token and UI session the user has now ("log out everywhere"); NotFound if none."""
        return await self._change_user(user_id, _revoking())

    async def set_user_quotas(self, user_id: str, quotas: dict[str, int | None]) -> User:
        """Set (or clear, with None) these of a user's own quotas, the others left as they are; NotFound if none."""
        return await self._change_user(user_id, {"$set": {f"quotas.{name}": value for name, value in quotas.items()}})

    async def _change_user(self, user_id: str, update: Document) -> User:
        return await change_one(
            self._users, User, {"_id": user_id}, update, what=f"user {user_id}", missing=f"no user {user_id}"
        )

    async def user_limits(self) -> dict[str, int]:
        """The users that have a limit of their own, and that limit."""
        with translated("user limits"):
            docs = await self._users.find({"max_running": {"$ne": None}}, {"max_running": 1}).to_list(None)
        return {doc["_id"]: int(doc["max_running"]) for doc in docs}

    async def insert_key(self, key: ApiKey) -> None:
        """Record a new API key."""
        with translated(f"api key {key.id}"):
            await self._keys.insert_one(to_document(key))

    async def get_key(self, key_id: str, *, owner: str | None = None) -> ApiKey:
        """One API key (of ``owner``, unless None), or NotFound."""
        match = {"_id": key_id, **owner_filter(owner)}
        return await read_one(self._keys, ApiKey, match, what=f"api key {key_id}", missing=f"no API key {key_id}")

    async def list_keys(self, *, owner: str | None, limit: int, after: str | None) -> Page[ApiKey]:
        """API keys, newest first."""
        return await read_page(self._keys, ApiKey, owner_filter(owner), limit=limit, after=after)

    async def revoke_key(self, key_id: str, *, owner: str | None) -> ApiKey:
        """Revoke an API key (once; revoking again changes nothing); NotFound if not ``owner``'s."""
        with translated(f"api key {key_id}"):
            await self._keys.update_one(
                {"_id": key_id, "revoked": None, **owner_filter(owner)}, {"$set": {"revoked": utcnow()}}
            )
        return await self.get_key(key_id, owner=owner)
