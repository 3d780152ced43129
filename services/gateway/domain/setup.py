"""Setting the backends up: the bucket, the stores' indexes and migrations, the first admin, the app directory."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from services.gateway.domain.accounts import ensure_admin
from services.gateway.domain.hashing import HashingPool
from services.gateway.domain.registry import register_directory
from shared.apps import AppSpec
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store import Stores


async def finish_setup(
    *,
    settings: GatewaySettings,
    stores: Stores,
    storage: ObjectStorage,
    hashing: HashingPool,
    directory_apps: dict[str, AppSpec],
) -> None:
    """Create the bucket (when configured), the indexes (and migrate), the first admin and the app directory's apps.

    Idempotent: every gateway replica runs it at start, or once its backends answer.
    """
    if settings.s3_create_bucket:
        await run_in_threadpool(storage.ensure_bucket)
    await stores.prepare(event_retention_seconds=settings.event_retention_days * 86400)
    if settings.admin_username is not None and settings.admin_password is not None:
        await ensure_admin(
            accounts=stores.accounts,
            hashing=hashing,
            username=settings.admin_username,
            password=settings.admin_password.get_secret_value(),
        )
    await register_directory(apps=stores.apps, directory=directory_apps)
