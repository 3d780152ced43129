"""The runner reads each app version's definition from the registry once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.runner.specs import AppVersions
from shared.apps import RegisteredApp
from shared.store.apps import AppStore
from tests.helpers.records import make_app


class CountingStore:
    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []

    async def get_app(self, name: str, version: str) -> RegisteredApp:
        self.reads.append((name, version))
        return make_app(name, version)


def test_each_version_is_read_from_mongo_once() -> None:
    store = CountingStore()
    versions = AppVersions()

    async def scenario() -> list[Any]:
        apps = cast(AppStore, store)
        return [await versions.get("a", v, apps=apps) for v in ("1", "2", "1", "1")]

    specs = asyncio.run(scenario())
    assert [spec.version for spec in specs] == ["1", "2", "1", "1"]
    assert store.reads == [("a", "1"), ("a", "2")]
