"""What the lifespan opens and every handler uses: settings, clients and the app directory's definitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, cast

from starlette.requests import Request

from services.gateway.auth import Authenticator
from shared.apps import AppSpec
from shared.broker import Broker
from shared.settings import GatewaySettings
from shared.storage import ObjectStorage
from shared.store import Stores

if TYPE_CHECKING:  # the dispatcher's module reaches the handlers, which import this one
    from services.gateway.dispatcher import Dispatcher


@dataclass
class Deps:
    """The gateway's collaborators, opened once per process by the lifespan."""

    settings: GatewaySettings
    directory_apps: dict[str, AppSpec]  # read from APPS_DIR at start; registered in Mongo by finish_setup
    stores: Stores
    storage: ObjectStorage
    broker: Broker
    authenticator: Authenticator
    dispatcher: Dispatcher
    setup_done: bool = field(default=False)


class LifespanState(TypedDict):
    """The lifespan state Starlette copies into every request."""

    deps: Deps


def deps(request: Request) -> Deps:
    """The collaborators for this request."""
    return cast(Deps, request.state.deps)
