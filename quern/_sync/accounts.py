# Generated from quern/_async/accounts.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""Accounts: users (``client.users``, for admins) and API keys (``client.keys``)."""

from __future__ import annotations

from collections.abc import Iterator

from quern._sync.connection import Connection
from quern.models import ApiKey, User


class Users:
    """Admins: ``client.users``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def create(self, username: str, password: str, *, role: str = "user") -> User:
        body = {"username": username, "password": password, "role": role}
        return self._connection.post(User, "/v1/users", body)

    def list(self) -> Iterator[User]:
        return self._connection.pages(User, "/v1/users")

    def get(self, user_id: str) -> User:
        return self._connection.get(User, f"/v1/users/{user_id}")

    def set_max_running(self, user_id: str, max_running: int | None) -> User:
        answer = self._connection.request("PATCH", f"/v1/users/{user_id}", json={"max_running": max_running})
        return User.model_validate(answer.json())

    def disable(self, user_id: str) -> None:
        self._connection.delete(f"/v1/users/{user_id}")

    def set_password(self, user_id: str, password: str) -> User:
        """Set another user's password; every token and UI session of theirs ends."""
        return self._connection.post(User, f"/v1/users/{user_id}/password", {"password": password})


class Keys:
    """API keys: ``client.keys``; the secret is in the answer of ``create`` only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def create(self, name: str) -> ApiKey:
        return self._connection.post(ApiKey, "/v1/keys", {"name": name})

    def list(self) -> Iterator[ApiKey]:
        return self._connection.pages(ApiKey, "/v1/keys")

    def revoke(self, key_id: str) -> None:
        self._connection.delete(f"/v1/keys/{key_id}")
