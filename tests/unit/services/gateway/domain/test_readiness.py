"""Each backend's answer to the readiness check: pure logic, no servers."""

from __future__ import annotations

import asyncio

from services.gateway.domain.readiness import Readiness, check
from shared.errors import Unavailable


async def answers() -> None:
    return None


async def refuses() -> None:
    raise Unavailable("mongo is down")


async def hangs() -> None:
    await asyncio.sleep(10)


def test_a_backend_that_answers_is_ok() -> None:
    assert asyncio.run(check(answers())) == "ok"


def test_a_backend_that_refuses_is_unavailable_with_its_reason() -> None:
    assert asyncio.run(check(refuses())) == "unavailable: mongo is down"


def test_a_backend_that_does_not_answer_in_time_is_unavailable() -> None:
    assert asyncio.run(check(hangs(), timeout=0.01)) == "unavailable: no answer in time"


def test_ready_only_when_every_backend_is_ok_and_failing_names_the_others_in_order() -> None:
    readiness = Readiness({"mongo": "unavailable: x", "s3": "ok", "rabbitmq": "unavailable: y"})
    assert not readiness.ready and readiness.failing == ["mongo", "rabbitmq"]
    assert Readiness({"mongo": "ok", "s3": "ok"}).ready
