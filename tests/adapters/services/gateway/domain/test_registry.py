"""Registering the app directory in Mongo at start, and picking each app's current version (pure logic)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

from structlog.testing import capture_logs

from services.gateway.domain.registry import current_versions, register_directory
from shared.apps import AppSpec, RegisteredApp
from shared.models import new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import make_app


def make_spec(name: str, **overrides: Any) -> AppSpec:
    definition: dict[str, Any] = {
        "name": name,
        "version": "1",
        "description": "from the directory",
        "command": ["true"],
        "parameters": {"type": "object", "additionalProperties": False},
        "outputs": ["*"],
        "timeout": {"default": 5, "max": 5},
    }
    return AppSpec.model_validate(definition | overrides)


def test_the_directory_is_registered_once_and_never_replaces_a_registered_version(settings: Settings) -> None:
    name = f"d{new_id()[-12:]}"

    async def scenario() -> tuple[list[RegisteredApp], list[MutableMapping[str, Any]]]:
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            await register_directory(apps=stores.apps, directory={name: make_spec(name)})
            with capture_logs() as logs:
                await register_directory(apps=stores.apps, directory={name: make_spec(name)})
                await register_directory(
                    apps=stores.apps, directory={name: make_spec(name, description="edited in place")}
                )
            return await stores.apps.app_versions(name), logs
        finally:
            await stores.close()

    versions, logs = asyncio.run(scenario())
    assert [(app.version, app.source, app.spec.description) for app in versions] == [
        ("1", "directory", "from the directory")
    ]
    assert [entry["event"] for entry in logs] == ["app_directory_version_differs"]


def test_each_app_is_shown_in_its_latest_enabled_version_else_its_latest() -> None:
    now = utcnow()
    versions = [
        make_app("a", "3", registered=now, disabled=now),
        make_app("a", "2", registered=now - timedelta(seconds=1)),
        make_app("a", "1", registered=now - timedelta(seconds=2)),
        make_app("b", "2", registered=now, disabled=now),
        make_app("b", "1", registered=now - timedelta(seconds=1), disabled=now),
    ]
    assert [(app.name, app.version) for app in current_versions(versions)] == [("a", "2"), ("b", "2")]
