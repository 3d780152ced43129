"""What the lifespan opens and every handler uses: settings, clients and the app registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from shared.apps import AppSpec
from shared.broker import Broker
from shared.mongo import MongoStore
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage


@dataclass
class Deps:
    """The gateway's collaborators, opened once per process by the lifespan."""

    settings: GatewaySettings
    apps: dict[str, AppSpec]
    store: MongoStore
    storage: ObjectStorage
    broker: Broker
    setup_done: bool = field(default=False)


class LifespanState(TypedDict):
    """The lifespan state Starlette copies into every request."""

    deps: Deps


async def finish_setup(d: Deps) -> None:
    """Create the bucket (when configured) and the indexes; done once, at start or on the first ready check."""
    if d.settings.s3_create_bucket:
        await run_in_threadpool(d.storage.ensure_bucket)
    await d.store.ensure_indexes()
    d.setup_done = True


def deps(request: Request) -> Deps:
    """The collaborators for this request."""
    return cast(Deps, request.state.deps)
