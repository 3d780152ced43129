"""What the lifespan opens and every handler uses: settings, clients and the app directory's definitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, cast

from starlette.requests import Request

from services.gateway.domain.accounts import LoginGuard
from services.gateway.domain.quotas import QueuedCounts, Quotas, StreamCounts
from services.gateway.domain.setup import finish_setup
from services.gateway.plumbing.auth import Authenticator
from shared.apps import AppSpec
from shared.broker import Broker
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store import Stores


@dataclass
class Deps:
    """The gateway's collaborators, opened once per process by the lifespan."""

    settings: GatewaySettings
    directory_apps: dict[str, AppSpec]  # read from APPS_DIR at start; registered in Mongo by finish_setup
    stores: Stores
    storage: ObjectStorage
    broker: Broker
    authenticator: Authenticator
    logins: LoginGuard  # the password-hashing pool and the failed-login limits
    wake: Callable[[], None]  # asks the scheduler for a dispatch pass now (a no-op when it runs elsewhere)
    setup_done: bool = field(default=False)
    streams: StreamCounts = field(default_factory=StreamCounts)  # event streams open here, per user
    queued: QueuedCounts = field(default_factory=QueuedCounts)  # recent counts of users' queued jobs

    async def quotas(self, user_id: str) -> Quotas:
        """The user's quotas in force (the user record as the authenticator caches it, for seconds)."""
        return Quotas.of(await self.authenticator.user(user_id), self.settings, self.queued)

    async def finish_setup(self) -> None:
        """Set up the backends once: at start or, if one was down then, once all answer."""
        await finish_setup(
            settings=self.settings,
            stores=self.stores,
            storage=self.storage,
            hashing=self.logins.hashing,
            directory_apps=self.directory_apps,
        )
        self.setup_done = True


class LifespanState(TypedDict):
    """The lifespan state Starlette copies into every request."""

    deps: Deps


def deps(request: Request) -> Deps:
    """The collaborators for this request."""
    return cast(Deps, request.state.deps)
