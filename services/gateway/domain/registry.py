"""Changing the app registry: the app directory at start, and admins through the API.

Every version of every app is kept in Mongo, and a version never changes once registered: a
job records its app's version and the runner reads exactly that definition. So a definition
whose name and version are registered already is refused (409 through the API); from the app
directory it is skipped with a warning, the registered one kept, unless the two are equal.
"""

from __future__ import annotations

import structlog

from shared.apps import AppSource, AppSpec, RegisteredApp, canonical, version_id
from shared.errors import Conflict, Invalid, NotFound, Violation
from shared.models import utcnow
from shared.store.apps import AppStore

log = structlog.get_logger()
DIRECTORY = "app-directory"  # registered_by of definitions read from APPS_DIR


async def register(*, apps: AppStore, spec: AppSpec, source: AppSource, by: str) -> RegisteredApp:
    """Record a version of an app; Conflict if that version is registered already."""
    app = RegisteredApp(
        id=version_id(spec.name, spec.version),
        name=spec.name,
        version=spec.version,
        spec=spec,
        source=source,
        registered=utcnow(),
        registered_by=by,
    )
    try:
        await apps.insert_app(app)
    except Conflict:
        raise Conflict(f"app {spec.name} version {spec.version} is registered already; versions never change") from None
    log.info("app_registered", app=spec.name, app_version=spec.version, source=source, by=by)
    return app


async def register_app(*, apps: AppStore, spec: AppSpec, by: str) -> RegisteredApp:
    """Register a new app through the API; Conflict if one of that name exists."""
    if await apps.current_app(spec.name) is not None:
        raise Conflict(f"app {spec.name} exists; register a new version at /v1/apps/{spec.name}/versions")
    return await register(apps=apps, spec=spec, source="api", by=by)


async def register_version(*, apps: AppStore, name: str, spec: AppSpec, by: str) -> RegisteredApp:
    """Register a new version of app ``name`` through the API; NotFound if there is no such app."""
    if spec.name != name:
        raise Invalid(
            f"this definition is of app {spec.name!r}, not {name!r}", [Violation("/name", f"must be {name!r}")]
        )
    if await apps.current_app(name) is None:
        raise NotFound(f"no app {name!r}")
    return await register(apps=apps, spec=spec, source="api", by=by)


async def register_directory(*, apps: AppStore, directory: dict[str, AppSpec]) -> None:
    """Register the app directory's definitions; a version registered already with another definition is skipped."""
    for spec in directory.values():
        try:
            await register(apps=apps, spec=spec, source="directory", by=DIRECTORY)
        except Conflict:
            held = await apps.get_app(spec.name, spec.version)
            if canonical(held.spec) != canonical(spec):
                log.warning(
                    "app_directory_version_differs",
                    app=spec.name,
                    app_version=spec.version,
                    registered_from=held.source,
                    detail="the registered definition is kept; give the changed one a new version",
                )


async def set_disabled(*, apps: AppStore, name: str, version: str | None, by: str | None) -> RegisteredApp:
    """Disable (``by`` an admin) or enable (``by`` None) one version of an app, or all; answers the current one."""
    if version is None:
        if await apps.current_app(name) is None:
            raise NotFound(f"no app {name!r}")
    else:
        await apps.get_app(name, version)
    await apps.set_app_disabled(name, version, by=by)
    log.info("app_disabled" if by else "app_enabled", app=name, app_version=version, by=by)
    return await describe_version(name, version, apps=apps)


async def find_app(name: str, *, apps: AppStore) -> AppSpec:
    """The latest enabled version of app ``name`` for a new job: NotFound if unknown, Conflict if disabled.

    As read at most ``CURRENT_APP_SECONDS`` ago (a change through this process shows at once).
    """
    current = await apps.recent_current_app(name)
    if current is None:
        raise NotFound(f"no app {name!r}")
    if current.disabled is not None:
        raise Conflict(f"app {name} is disabled: no new job may use it")
    return current.spec


def current_versions(versions: list[RegisteredApp]) -> list[RegisteredApp]:
    """One entry per app: its latest enabled version, else its latest; ``versions`` by name, newest first."""
    chosen: dict[str, RegisteredApp] = {}
    for app in versions:
        held = chosen.get(app.name)
        if held is None or (held.disabled is not None and app.disabled is None):
            chosen[app.name] = app
    return [chosen[name] for name in sorted(chosen)]


async def listed_apps(*, apps: AppStore, with_disabled: bool) -> list[RegisteredApp]:
    """Every app in its current version, by name; a disabled one only ``with_disabled`` (for admins)."""
    listed = current_versions(await apps.app_versions())
    return listed if with_disabled else [app for app in listed if app.disabled is None]


async def versions_of(name: str, *, apps: AppStore) -> list[RegisteredApp]:
    """Every version of app ``name``, newest first; NotFound if there is none."""
    versions = await apps.app_versions(name)
    if not versions:
        raise NotFound(f"no app {name!r}")
    return versions


async def describe_version(name: str, version: str | None, *, apps: AppStore) -> RegisteredApp:
    """One version of an app (the current one unless ``version`` is given), or NotFound."""
    if version is not None:
        return await apps.get_app(name, version)
    current = await apps.current_app(name)
    if current is None:
        raise NotFound(f"no app {name!r}")
    return current
