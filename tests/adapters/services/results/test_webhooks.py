"""Webhook signatures, the delivery schedule, and deliveries against a real Mongo and receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from services.results.webhooks import announce, announce_progress, backoff_seconds, deliver, sign
from shared.models import (
    Delivery,
    DeliveryState,
    Job,
    JobProgress,
    JobState,
    Webhook,
    WebhookSecret,
    WebhookTarget,
    new_id,
    utcnow,
)
from shared.settings import ResultsSettings, load
from shared.store import Stores
from tests.helpers.receiver import receiver
from tests.helpers.records import ended_job

T = TypeVar("T")


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # A fixed vector: anyone can check it with `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
    header = sign("whsec_test", 1700000000, '{"a":1}')
    assert header == "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"


def test_attempts_back_off_exponentially_up_to_six_hours() -> None:
    assert [backoff_seconds(n, 10) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff_seconds(40, 10) == 6 * 3600


@pytest.fixture
def results_settings(env: dict[str, str]) -> ResultsSettings:
    """Loopback allowed, quick attempts; a database of its own, so nothing reaches the test stack."""
    settings = load(ResultsSettings)
    return settings.model_copy(
        update={"mongo_database": f"hooks_{new_id()}", "webhook_max_attempts": 3, "webhook_timeout_seconds": 2.0}
    )


def in_store(settings: ResultsSettings, scenario: Callable[[Stores], Awaitable[T]]) -> T:
    async def main() -> T:
        stores = Stores.connect(settings, appname="quern-tests")
        try:
            await stores.webhooks.set_webhook_secret(WebhookSecret(id="u1", secret="whsec_test", created=utcnow()))
            return await scenario(stores)
        finally:
            await stores.close()

    return asyncio.run(main())


def test_announcing_an_end_twice_records_and_sends_one_delivery(results_settings: ResultsSettings) -> None:
    sent: list[str] = []

    async def send(delivery_id: str) -> None:
        sent.append(delivery_id)

    async def scenario(stores: Stores) -> list[Delivery]:
        job = ended_job("https://hooks.example.com/")
        await announce(job, webhooks=stores.webhooks, send=send)
        await deliver(
            sent[0],
            webhooks=stores.webhooks,
            jobs=stores.jobs,
            settings=results_settings.model_copy(update={"webhook_allowed_networks": ""}),
        )
        await announce(job, webhooks=stores.webhooks, send=send)
        return await stores.webhooks.job_deliveries(job.id)

    (delivery,) = in_store(results_settings, scenario)
    assert sent == [delivery.id] and len(delivery.attempts) == 1


def test_concurrent_attempts_at_one_delivery_succeed_once(results_settings: ResultsSettings) -> None:
    async def scenario(stores: Stores) -> list[Delivery]:
        job = ended_job(hook.url)
        (delivery_id,) = await announce(job, webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        await asyncio.gather(
            *(
                deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=results_settings)
                for _ in range(5)
            )
        )
        await deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=results_settings)
        return await stores.webhooks.job_deliveries(job.id)

    with receiver(("sleep", 0.3, 200)) as hook:
        (delivery,) = in_store(results_settings, scenario)
        assert len(hook.received) == 1
    assert delivery.state is DeliveryState.SUCCEEDED and [a.status_code for a in delivery.attempts] == [200]


def test_a_refused_address_fails_after_the_last_attempt_without_a_request(results_settings: ResultsSettings) -> None:
    guarded = results_settings.model_copy(update={"webhook_allowed_networks": "", "webhook_backoff_seconds": 10.0})

    async def scenario(stores: Stores) -> tuple[list[float | None], Delivery]:
        (delivery_id,) = await announce(ended_job(hook.url), webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        delays = [
            await deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=guarded) for _ in range(4)
        ]
        return delays, await stores.webhooks.get_delivery(delivery_id)

    with receiver() as hook:
        delays, delivery = in_store(results_settings, scenario)
        assert hook.received == []
    assert delays == [10.0, 20.0, None, None] and delivery.state is DeliveryState.FAILED
    assert all("not a public address" in (attempt.error or "") for attempt in delivery.attempts)
    assert len(delivery.attempts) == 3


def running_job(target: WebhookTarget | None, *, percent: float = 40.0) -> Job:
    return ended_job("https://unused.example.com/").model_copy(
        update={
            "state": JobState.RUNNING,
            "finished": None,
            "webhook": target,
            "progress": JobProgress(percent=percent, step="routing", at=utcnow()),
        }
    )


def test_progress_goes_only_to_receivers_that_asked_for_it(results_settings: ResultsSettings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[Delivery]]:
        for url, progress in (("https://a.example.com/", True), ("https://b.example.com/", False)):
            await stores.webhooks.insert_webhook(
                Webhook(id=new_id(), owner="u1", url=url, progress=progress, created=utcnow())
            )
        job = running_job(None)
        sent = await announce_progress(job, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        sent += await announce_progress(
            job, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0)
        )  # redelivered
        # (sent again while it has no attempt, which is harmless: the lease lets one attempt through)
        return sent, await stores.webhooks.job_deliveries(job.id)

    sent, deliveries = in_store(results_settings, scenario)
    (delivery,) = deliveries
    assert set(sent) == {delivery.id} and delivery.url == "https://a.example.com/" and delivery.event == "job.progress"
    body = json.loads(delivery.body)
    assert body["type"] == "job.progress" and body["job"]["state"] == "RUNNING"
    assert body["job"]["progress"]["percent"] == 40.0 and body["job"]["progress"]["step"] == "routing"


def test_a_jobs_own_webhook_gets_progress_only_when_it_asked(results_settings: ResultsSettings) -> None:
    async def scenario(stores: Stores) -> tuple[list[str], list[str]]:
        quiet = running_job(WebhookTarget(url="https://hooks.example.com/"))
        chatty = running_job(WebhookTarget(url="https://hooks.example.com/", progress=True))
        nothing = await announce_progress(quiet, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        return nothing, await announce_progress(
            chatty, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0)
        )

    nothing, sent = in_store(results_settings, scenario)
    assert nothing == [] and len(sent) == 1


def test_progress_of_a_job_that_has_ended_is_not_sent(results_settings: ResultsSettings) -> None:
    async def scenario(stores: Stores) -> list[str]:
        job = running_job(WebhookTarget(url="https://hooks.example.com/", progress=True))
        ended = job.model_copy(update={"state": JobState.SUCCEEDED, "finished": utcnow()})
        return await announce_progress(ended, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))

    assert in_store(results_settings, scenario) == []


def test_a_progress_delivery_gives_up_after_three_attempts(results_settings: ResultsSettings) -> None:
    patient = results_settings.model_copy(update={"webhook_max_attempts": 8, "webhook_backoff_seconds": 0.01})

    async def scenario(stores: Stores) -> tuple[list[float | None], Delivery]:
        job = running_job(WebhookTarget(url=hook.url, progress=True))
        await stores.jobs.insert_job(job)  # still running: every attempt is made
        (delivery_id,) = await announce_progress(job, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        delays = [
            await deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=patient) for _ in range(4)
        ]
        return delays, await stores.webhooks.get_delivery(delivery_id)

    with receiver(500, 500, 500, 500) as hook:
        delays, delivery = in_store(results_settings, scenario)
        assert len(hook.received) == 3
    assert delays[2:] == [None, None] and delivery.state is DeliveryState.FAILED


def test_a_progress_delivery_whose_job_has_ended_is_not_sent(results_settings: ResultsSettings) -> None:
    async def scenario(stores: Stores) -> Delivery:
        job = running_job(WebhookTarget(url=hook.url, progress=True))
        (delivery_id,) = await announce_progress(job, "ev1", webhooks=stores.webhooks, send=lambda _: asyncio.sleep(0))
        await stores.jobs.insert_job(job.model_copy(update={"state": JobState.SUCCEEDED, "finished": utcnow()}))
        assert await deliver(delivery_id, webhooks=stores.webhooks, jobs=stores.jobs, settings=results_settings) is None
        return await stores.webhooks.get_delivery(delivery_id)

    with receiver() as hook:
        delivery = in_store(results_settings, scenario)
        assert hook.received == []
    assert delivery.state is DeliveryState.FAILED and "the job has ended (SUCCEEDED)" in (
        delivery.attempts[0].error or ""
    )
