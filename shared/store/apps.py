"""The app registry: every registered version of every app, and which are disabled."""

from __future__ import annotations

import time

from pymongo import ASCENDING, DESCENDING

from shared.apps import RegisteredApp
from shared.models import utcnow
from shared.store.database import Database, Document, from_document, read_one, to_document, translated

CURRENT_APP_SECONDS = 2.0  # how long a process reuses an app's current version it read, for new jobs
MAX_RECENT_APPS = 1000


class AppStore:
    """Registered app versions."""

    def __init__(self, database: Database) -> None:
        self._apps = database.collection("apps")
        self._recent: dict[str, tuple[float, RegisteredApp]] = {}  # name -> (when read, current version)
        self._changes = 0  # registry changes made through this process: a read begun before one is not kept

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        with translated("create indexes"):
            await self._apps.create_index([("name", ASCENDING), ("registered", DESCENDING)])

    async def insert_app(self, app: RegisteredApp) -> None:
        """Record one version of an app; Conflict if that version is registered already."""
        self._changed(app.name)
        with translated(f"app {app.id}"):
            await self._apps.insert_one(to_document(app))
        self._changed(app.name)

    async def get_app(self, name: str, version: str) -> RegisteredApp:
        """One version of an app, enabled or not, or NotFound."""
        match = {"name": name, "version": version}
        missing = f"no app {name!r} version {version!r}"
        return await read_one(self._apps, RegisteredApp, match, what=f"app {name}@{version}", missing=missing)

    async def current_app(self, name: str) -> RegisteredApp | None:
        """The latest enabled version of an app, else its latest version (disabled), else None."""
        newest = [("registered", DESCENDING), ("_id", DESCENDING)]
        with translated(f"app {name}"):
            doc = await self._apps.find_one({"name": name, "disabled": None}, sort=newest)
            if doc is None:
                doc = await self._apps.find_one({"name": name}, sort=newest)
        return None if doc is None else from_document(RegisteredApp, doc)

    async def recent_current_app(self, name: str) -> RegisteredApp | None:
        """``current_app`` as this process read it at most ``CURRENT_APP_SECONDS`` ago, for submissions.

        A version is immutable, but which one is current (a new one registered, one disabled) can
        change: through this process it shows at once, through another within ``CURRENT_APP_SECONDS``.
        An unknown app is read again every time.
        """
        now, changes = time.monotonic(), self._changes
        held = self._recent.get(name)
        if held is not None and now - held[0] < CURRENT_APP_SECONDS:
            return held[1]
        current = await self.current_app(name)
        if current is None or changes != self._changes:
            self._recent.pop(name, None)
        else:
            if len(self._recent) >= MAX_RECENT_APPS:
                self._recent.clear()
            self._recent[name] = (now, current)
        return current

    async def app_versions(self, name: str | None = None) -> list[RegisteredApp]:
        """Every version of one app (or of all apps), by name, newest first."""
        order = [("name", ASCENDING), ("registered", DESCENDING), ("_id", DESCENDING)]
        with translated("list apps"):
            docs = await self._apps.find({} if name is None else {"name": name}).sort(order).to_list(None)
        return [from_document(RegisteredApp, doc) for doc in docs]

    async def set_app_disabled(self, name: str, version: str | None, *, by: str | None) -> None:
        """Disable (``by`` someone) or enable (``by`` None) one version of an app, or every version.

        A version disabled already keeps the time and name of whoever disabled it first.
        """
        self._changed(name)
        match: Document = {"name": name} | ({} if version is None else {"version": version})
        if by is None:
            update: Document = {"$set": {"disabled": None, "disabled_by": None}}
        else:
            match["disabled"] = None
            update = {"$set": {"disabled": utcnow(), "disabled_by": by}}
        with translated(f"app {name}"):
            await self._apps.update_many(match, update)
        self._changed(name)

    def _changed(self, name: str) -> None:
        self._changes += 1
        self._recent.pop(name, None)
