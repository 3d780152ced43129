"""The app definitions jobs name, read from the registry in Mongo and kept: a registered version never changes."""

from __future__ import annotations

from shared.apps import AppSpec
from shared.store.apps import AppStore

MAX_CACHED = 256


class AppVersions:
    """Definitions by (name, version), each read from Mongo once; an app registered on any gateway runs here."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], AppSpec] = {}

    async def get(self, name: str, version: str, *, apps: AppStore) -> AppSpec:
        """The definition of exactly ``name`` ``version``, enabled or not (queued jobs still run); NotFound if none."""
        key = (name, version)
        spec = self._specs.get(key)
        if spec is None:
            spec = (await apps.get_app(name, version)).spec
            if len(self._specs) >= MAX_CACHED:
                self._specs.pop(next(iter(self._specs)))
            self._specs[key] = spec
        return spec
