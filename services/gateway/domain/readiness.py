"""Readiness: whether each backend (Mongo, S3, RabbitMQ) answers in time, and whether that is enough to serve.

Only Mongo gates readiness: without it a gateway can answer nothing. Submissions are built to
survive a RabbitMQ outage (the jobs wait in Mongo until the dispatcher can send them) and most
requests need no S3, so a broker or object store blip must not take every gateway out of its
Service at once; they are reported beside, for operators and alerts. Each check runs over the
client's long-lived connections (Mongo's and boto3's pools, the broker's probe connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from shared.broker import Broker
from shared.errors import AppError
from shared.storage import ObjectStorage
from shared.store import Stores

CHECK_TIMEOUT_SECONDS = 3.0
OK = "ok"
GATING = ("mongo",)  # the backends a gateway is not ready without


@dataclass(frozen=True)
class Readiness:
    """Each backend's answer: "ok", or "unavailable: " and why."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        """Whether every backend the gateway needs to serve answered."""
        return all(self.checks[name] == OK for name in GATING)

    @property
    def failing(self) -> list[str]:
        """The backends that did not answer, in the order they were asked."""
        return [name for name, result in self.checks.items() if result != OK]

    @property
    def blocking(self) -> list[str]:
        """The backends that did not answer and keep the gateway from being ready."""
        return [name for name in self.failing if name in GATING]


async def check(probe: Awaitable[None], *, timeout: float = CHECK_TIMEOUT_SECONDS) -> str:
    """The probe's answer: "ok" if it returns within ``timeout``, else "unavailable: " and why."""
    try:
        await asyncio.wait_for(probe, timeout)
    except (AppError, TimeoutError) as exc:
        return f"unavailable: {exc}" if str(exc) else "unavailable: no answer in time"
    return OK


async def check_backends(*, stores: Stores, storage: ObjectStorage, broker: Broker) -> Readiness:
    """Ask Mongo, S3 and RabbitMQ at once; each has ``CHECK_TIMEOUT_SECONDS`` to answer."""
    names = ("mongo", "s3", "rabbitmq")
    results = await asyncio.gather(
        check(stores.ping()), check(run_in_threadpool(storage.ping)), check(run_in_threadpool(broker.ping))
    )
    return Readiness(dict(zip(names, results, strict=True)))
