"""The app registry against the test Mongo: versions registered once, the current one the latest enabled."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.apps import RegisteredApp
from shared.errors import Conflict, NotFound
from shared.models import (
    new_id,
    utcnow,
)
from shared.settings import Settings
from shared.store import Stores
from shared.store.apps import CURRENT_APP_SECONDS, AppStore
from tests.helpers.records import in_store, make_app


def test_the_current_app_version_is_the_latest_enabled_one(settings: Settings) -> None:
    name = f"a{new_id()[-12:]}"

    async def scenario(stores: Stores) -> list[tuple[str, bool] | None]:
        seen: list[RegisteredApp | None] = [await stores.apps.current_app(name)]
        await stores.apps.insert_app(make_app(name, "1", registered=utcnow() - timedelta(seconds=2)))
        await stores.apps.insert_app(make_app(name, "2"))
        seen.append(await stores.apps.current_app(name))
        await stores.apps.set_app_disabled(name, "2", by="admin")
        seen.append(await stores.apps.current_app(name))
        await stores.apps.set_app_disabled(name, None, by="admin")
        seen.append(await stores.apps.current_app(name))
        await stores.apps.set_app_disabled(name, "1", by=None)
        seen.append(await stores.apps.current_app(name))
        return [None if app is None else (app.version, app.disabled is not None) for app in seen]

    assert in_store(settings, scenario) == [None, ("2", False), ("1", False), ("2", True), ("1", False)]


def test_a_process_sees_its_own_registry_changes_at_once_and_others_within_the_bound(settings: Settings) -> None:
    name = f"a{new_id()[-12:]}"

    async def scenario(stores: Stores) -> list[tuple[str, bool] | None]:
        other = AppStore(stores.database)  # another gateway's store over the same database
        seen: list[RegisteredApp | None] = [await stores.apps.recent_current_app(name)]
        await other.insert_app(make_app(name, "1", registered=utcnow() - timedelta(seconds=2)))
        seen.append(await stores.apps.recent_current_app(name))  # an unknown app is not remembered
        await stores.apps.insert_app(make_app(name, "2"))
        seen.append(await stores.apps.recent_current_app(name))
        await stores.apps.set_app_disabled(name, "2", by="admin")
        seen.append(await stores.apps.recent_current_app(name))
        await other.set_app_disabled(name, "1", by="admin")
        seen.append(await stores.apps.recent_current_app(name))  # another's change: not yet
        await asyncio.sleep(CURRENT_APP_SECONDS)
        seen.append(await stores.apps.recent_current_app(name))
        return [None if app is None else (app.version, app.disabled is not None) for app in seen]

    assert in_store(settings, scenario) == [None, ("1", False), ("2", False), ("1", False), ("1", False), ("2", True)]


def test_an_app_version_is_registered_once_and_read_back_whole(settings: Settings) -> None:
    name = f"a{new_id()[-12:]}"

    async def scenario(stores: Stores) -> tuple[RegisteredApp, list[str]]:
        await stores.apps.insert_app(make_app(name, "1"))
        with pytest.raises(Conflict):
            await stores.apps.insert_app(make_app(name, "1", registered_by="someone-else"))
        with pytest.raises(NotFound):
            await stores.apps.get_app(name, "9")
        await stores.apps.insert_app(make_app(name, "2"))
        return await stores.apps.get_app(name, "1"), [app.version for app in await stores.apps.app_versions(name)]

    app, versions = in_store(settings, scenario)
    assert app.registered_by == "admin" and "a.b" in app.spec.parameters["$defs"]
    assert versions == ["2", "1"]
