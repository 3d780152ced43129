"""Records to store, and a database of their own, for the store tests and the tests of code over the stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from services.results.actors import package_results
from shared.apps import AppSpec, RegisteredApp, version_id
from shared.broker import Broker
from shared.models import Dataset, DatasetMember, Job, JobState, StateChange, WebhookTarget, new_id, utcnow
from shared.settings import Settings
from shared.storage import ObjectStorage
from shared.store import Stores

T = TypeVar("T")


def in_store(settings: Settings, scenario: Callable[[Stores], Awaitable[T]]) -> T:
    """Run ``scenario`` on a database of its own, so its jobs never reach the test stack's dispatcher."""
    own = settings.model_copy(update={"mongo_database": f"store_{new_id()}"})

    async def main() -> T:
        stores = Stores.connect(own, appname="quern-tests")
        try:
            return await scenario(stores)
        finally:
            await stores.close()

    return asyncio.run(main())


async def package(job_id: str, stores: Stores, *, storage: ObjectStorage, broker: Broker) -> float | None:
    """``package_results`` of ``job_id`` over ``stores``, as a results worker runs it."""
    return await package_results(
        job_id,
        jobs=stores.jobs,
        archives=stores.archives,
        events=stores.events,
        webhooks=stores.webhooks,
        storage=storage,
        broker=broker,
    )


def make_job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "id": new_id(),
        "owner": "u1",
        "app": "flood",
        "app_version": "1",
        "params": {"steps": 3},
        "inputs": {"elevation": "f1"},
        "timeout_seconds": 60,
        "created": utcnow(),
        # As if the dispatcher had sent it: claims look for its lease, which stays once sent.
        "dispatched": utcnow(),
        "dispatch_lease": utcnow(),
    }
    return Job(**(fields | overrides))


def ended(seconds_ago: float, **overrides: Any) -> Job:
    """A job that ran and ended ``seconds_ago``."""
    at = utcnow() - timedelta(seconds=seconds_ago)
    fields: dict[str, Any] = {"state": JobState.SUCCEEDED, "started": at, "finished": at}
    return make_job(**(fields | overrides))


def forced(job: Job, to: JobState, reason: str) -> StateChange:
    return StateChange.model_validate({"at": utcnow(), "from": job.state, "to": to, "by": "root", "reason": reason})


def make_dataset(**overrides: Any) -> Dataset:
    now = utcnow()
    fields: dict[str, Any] = {
        "id": new_id(),
        "owner": "u1",
        "name": f"d-{new_id()}",
        "kind": "zip",
        "members": [DatasetMember(path="a.txt", size=1, sha256="0" * 64)],
        "source_file": "f1",
        "created": now,
        "updated": now,
    }
    return Dataset(**(fields | overrides))


def make_app(name: str, version: str, **overrides: Any) -> RegisteredApp:
    spec = AppSpec.model_validate(
        {
            "name": name,
            "version": version,
            "description": "test app",
            "command": ["true"],
            "parameters": {"type": "object", "additionalProperties": False, "$defs": {"a.b": {"type": "string"}}},
            "outputs": ["*"],
            "timeout": {"default": 5, "max": 5},
        }
    )
    fields: dict[str, Any] = {
        "id": version_id(name, version),
        "name": name,
        "version": version,
        "spec": spec,
        "source": "api",
        "registered": utcnow(),
        "registered_by": "admin",
    }
    return RegisteredApp(**(fields | overrides))


def script_app(script: str, *, inputs: dict[str, Any] | None = None) -> RegisteredApp:
    """A new app running the Python ``script`` (given each input's path), whose output is ``out.txt``."""
    name = f"s{uuid.uuid4().hex[:10]}"
    spec = AppSpec.model_validate(
        {
            "name": name,
            "version": "1",
            "description": "test app",
            "command": ["{python}", "-c", script, *(f"{{inputs.{slot}}}" for slot in inputs or {})],
            "parameters": {"type": "object", "additionalProperties": False},
            "inputs": inputs or {},
            "outputs": ["out.txt"],
            "timeout": {"default": 30, "max": 30},
        }
    )
    return make_app(name, "1", spec=spec)


def make_spec(**overrides: Any) -> AppSpec:
    """An app definition (``grid`` 2.1) with ``overrides``, for checks of requests against it."""
    definition: dict[str, Any] = {
        "name": "grid",
        "version": "2.1",
        "description": "test app",
        "command": ["{python}", "{app_dir}/grid.py", "--n={params.n}", "{inputs.table}"],
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                "mode": {"type": "string", "enum": ["fast", "exact"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "inputs": {"table": {"description": "a table"}, "extra": {"description": "optional", "required": False}},
        "outputs": ["*.csv"],
        "timeout": {"default": 10, "max": 100},
    }
    definition.update(overrides)
    return AppSpec.model_validate(definition)


def ended_job(url: str) -> Job:
    """A job of user u1 that SUCCEEDED just now, with its own webhook ``url``."""
    return Job(
        id=new_id(),
        owner="u1",
        app="flood",
        app_version="1",
        params={},
        inputs={},
        timeout_seconds=60,
        created=utcnow(),
        state=JobState.SUCCEEDED,
        finished=utcnow(),
        webhook=WebhookTarget(url=url),
    )
