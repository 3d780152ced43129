# Generated from quern/_async/apps.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""The app registry: ``client.apps``."""

from __future__ import annotations

import builtins
from typing import Any

from quern._sync.connection import Connection
from quern.errors import NotFound
from quern.models import App
from quern.transport import query


class Apps:
    """The app registry: ``client.apps``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def list(self) -> builtins.list[App]:
        answer = self._connection.request("GET", "/v1/apps")
        return [App.model_validate(item) for item in answer.json()["items"]]

    def get(self, name: str, *, version: str | None = None) -> App:
        return self._connection.get(App, f"/v1/apps/{name}", version=version)

    def register(self, definition: dict[str, Any]) -> App:
        """Admins: a new app, or (when one of that name exists) a new version of it."""
        try:
            self.get(str(definition.get("name", "")))
        except NotFound:
            return self._connection.post(App, "/v1/apps", definition)
        return self._connection.post(App, f"/v1/apps/{definition['name']}/versions", definition)

    def disable(self, name: str, *, version: str | None = None) -> App:
        return self._connection.post(App, f"/v1/apps/{name}/disable", query(version=version) or None)

    def enable(self, name: str, *, version: str | None = None) -> App:
        return self._connection.post(App, f"/v1/apps/{name}/enable", query(version=version) or None)
