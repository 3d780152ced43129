"""Accounts: users (``client.users``, for admins) and API keys (``client.keys``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quern._async.connection import AsyncConnection
from quern.models import ApiKey, User


class Users:
    """Admins: ``client.users``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(self, username: str, password: str, *, role: str = "user") -> User:
        body = {"username": username, "password": password, "role": role}
        return await self._connection.post(User, "/v1/users", body)

    def list(self) -> AsyncIterator[User]:
        return self._connection.pages(User, "/v1/users")

    async def get(self, user_id: str) -> User:
        return await self._connection.get(User, f"/v1/users/{user_id}")

    async def set_max_running(self, user_id: str, max_running: int | None) -> User:
        answer = await self._connection.request("PATCH", f"/v1/users/{user_id}", json={"max_running": max_running})
        return User.model_validate(answer.json())

    async def disable(self, user_id: str) -> None:
        await self._connection.delete(f"/v1/users/{user_id}")

    async def set_password(self, user_id: str, password: str) -> User:
        """Set another user's password; every token and UI session of theirs ends."""
        return await self._connection.post(User, f"/v1/users/{user_id}/password", {"password": password})


class Keys:
    """API keys: ``client.keys``; the secret is in the answer of ``create`` only."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(self, name: str) -> ApiKey:
        return await self._connection.post(ApiKey, "/v1/keys", {"name": name})

    def list(self) -> AsyncIterator[ApiKey]:
        return self._connection.pages(ApiKey, "/v1/keys")

    async def revoke(self, key_id: str) -> None:
        await self._connection.delete(f"/v1/keys/{key_id}")
