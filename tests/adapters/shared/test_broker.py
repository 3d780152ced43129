"""The RabbitMQ adapter against the machine's RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dramatiq
import pika
import pytest
from dramatiq.broker import Consumer, MessageProxy

from shared.broker import Broker
from shared.settings import Settings
from shared.tasks import Task


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    broker = Broker(settings)
    yield broker
    broker.close()


@pytest.fixture
def queue(settings: Settings) -> Iterator[str]:
    """A queue of this test's own, deleted afterwards."""
    name = f"{settings.queue_namespace}.stale-{uuid.uuid4().hex[:8]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url.get_secret_value()))
    try:
        for suffix in ("", ".DQ", ".XQ"):
            connection.channel().queue_delete(name + suffix)
    finally:
        connection.close()


def send(broker: Broker, queue: str, name: str) -> None:
    broker.dramatiq.enqueue(dramatiq.Message(queue_name=queue, actor_name="x", args=(name,), kwargs={}, options={}))


def receive(consumer: Consumer) -> MessageProxy:
    while (message := next(consumer)) is None:
        pass
    return message


def test_a_message_from_a_closed_channel_is_not_settled_in_place_of_another(broker: Broker, queue: str) -> None:
    broker.dramatiq.declare_queue(queue)
    send(broker, queue, "first")
    send(broker, queue, "long")
    before = broker.dramatiq.consume(queue, prefetch=1, timeout=1000)
    before.ack(receive(before))
    long_run = receive(before)  # delivery tag 2 on the first channel
    before.close()  # as RabbitMQ does at consumer_timeout; the worker opens a new consumer

    after = broker.dramatiq.consume(queue, prefetch=1, timeout=1000)
    redelivered = receive(after)
    assert redelivered.args == ("long",)
    after.ack(redelivered)  # the runner drops it: the job is claimed already
    send(broker, queue, "next")
    next_job = receive(after)  # delivery tag 2 on the new channel
    after.ack(long_run)  # the long run ends
    after.close()

    connection = pika.BlockingConnection(broker.dramatiq.parameters)
    try:
        waiting = connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()
    assert (next_job.args, waiting) == (("next",), 1)  # still unacked, so back in the queue


def test_waiting_counts_the_messages_ready_in_a_queue(broker: Broker, queue: str, settings: Settings) -> None:
    task = Task(actor="x", queue=queue.removeprefix(f"{settings.queue_namespace}."))
    assert broker.waiting(task) == 0  # not declared yet
    sent = broker.send_all(task, ["a", "b", "c"])
    assert list(sent) == ["a", "b", "c"] and len(set(sent.values())) == 3
    assert broker.waiting(task) == 3
