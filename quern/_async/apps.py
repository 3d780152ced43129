"""The app registry: ``client.apps``."""

from __future__ import annotations

import builtins
from typing import Any

from quern._async.connection import AsyncConnection
from quern.errors import NotFound
from quern.models import App
from quern.transport import query


class Apps:
    """The app registry: ``client.apps``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def list(self) -> builtins.list[App]:
        answer = await self._connection.request("GET", "/v1/apps")
        return [App.model_validate(item) for item in answer.json()["items"]]

    async def get(self, name: str, *, version: str | None = None) -> App:
        return await self._connection.get(App, f"/v1/apps/{name}", version=version)

    async def register(self, definition: dict[str, Any]) -> App:
        """Admins: a new app, or (when one of that name exists) a new version of it."""
        try:
            await self.get(str(definition.get("name", "")))
        except NotFound:
            return await self._connection.post(App, "/v1/apps", definition)
        return await self._connection.post(App, f"/v1/apps/{definition['name']}/versions", definition)

    async def disable(self, name: str, *, version: str | None = None) -> App:
        return await self._connection.post(App, f"/v1/apps/{name}/disable", query(version=version) or None)

    async def enable(self, name: str, *, version: str | None = None) -> App:
        return await self._connection.post(App, f"/v1/apps/{name}/enable", query(version=version) or None)
