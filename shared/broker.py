"""The RabbitMQ adapter: a Dramatiq broker that publishes with confirms and speaks our errors.

Every service builds its broker here. The gateway only publishes; the runner and results
workers also register actors on ``broker.dramatiq`` and consume.

A job's message is acked when the job ends, so a job longer than RabbitMQ's ``consumer_timeout``
(30 minutes by default) gets its channel closed and its message redelivered; the claim in Mongo
drops the redelivery. Dramatiq then acks the first delivery on the consumer's new channel, where
delivery tags start again at 1, so ``_OwnDeliveriesConsumer`` settles only deliveries it made.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import pika
import pika.exceptions
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Middleware, default_middleware

from shared.broker_probe import Probe
from shared.errors import Unavailable
from shared.settings import Settings
from shared.tasks import Task

log = structlog.get_logger()


class _OwnDeliveriesConsumer(_RabbitmqConsumer):
    """A consumer that acks or nacks only the messages it delivered itself.

    Without this, a message delivered on a channel that has since closed carries a tag that may
    name another message on the new channel, which Dramatiq would settle in its place.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._delivered: dict[int, MessageProxy] = {}

    def __next__(self) -> MessageProxy | None:
        message: MessageProxy | None = super().__next__()  # type: ignore[no-untyped-call]
        if message is not None:
            self._delivered[message._tag] = message
        return message

    def _own(self, message: MessageProxy) -> bool:
        tag: int = message._tag
        if self._delivered.get(tag) is not message:
            # Its channel is gone and RabbitMQ has requeued it: there is nothing left to settle.
            log.warning("stale_delivery_not_settled", message_id=message.message_id, actor=message.actor_name)
            return False
        del self._delivered[tag]
        return True

    def ack(self, message: MessageProxy) -> None:
        if self._own(message):
            super().ack(message)  # type: ignore[no-untyped-call]

    def nack(self, message: MessageProxy) -> None:
        if self._own(message):
            super().nack(message)  # type: ignore[no-untyped-call]


class _Rabbitmq(RabbitmqBroker):
    @property
    def consumer_class(self) -> type[_OwnDeliveriesConsumer]:
        return _OwnDeliveriesConsumer


class Broker:
    """A Dramatiq RabbitMQ broker for one deployment's namespace."""

    def __init__(self, settings: Settings, *, middleware: list[Middleware] | None = None) -> None:
        self.namespace = settings.queue_namespace
        self._url = settings.rabbitmq_url.get_secret_value()
        stack: list[Middleware] = [m() for m in default_middleware]
        self.dramatiq = _Rabbitmq(url=self._url, confirm_delivery=True, middleware=stack + (middleware or []))
        self._probe = Probe(self._url.split(";"))

    def queue(self, task: Task) -> str:
        """The namespaced queue name of a task."""
        return task.queue_name(self.namespace)

    def send(self, task: Task, *args: Any) -> str:
        """Publish a message for ``task`` and wait for RabbitMQ's confirm; returns the message id."""
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=self.queue(task), actor_name=task.actor, args=args, kwargs={}, options={}
        )
        try:
            self.dramatiq.enqueue(message)
        except (BrokerConnectionError, pika.exceptions.AMQPError, OSError) as exc:
            raise Unavailable(f"RabbitMQ did not accept the {task.actor} message") from exc
        log.debug("message_sent", actor=task.actor, message_id=message.message_id)
        return message.message_id

    def send_all(self, task: Task, ids: list[str]) -> dict[str, str]:
        """Publish one ``task`` message per id, in order: {id: message id} of those sent before any failure."""
        sent = {}
        for one in ids:
            try:
                sent[one] = self.send(task, one)
            except Unavailable as exc:
                log.warning(
                    "send_interrupted", actor=task.actor, sent=len(sent), unsent=len(ids) - len(sent), detail=exc.detail
                )
                break
        return sent

    def waiting(self, task: Task) -> int:
        """Messages ready (not yet delivered) in ``task``'s queue; on this thread's open connection, cheap to poll."""
        try:
            frame = self.dramatiq.channel.queue_declare(self.queue(task), passive=True)
        except pika.exceptions.ChannelClosedByBroker:  # 404: no worker declared it yet
            del self.dramatiq.channel
            return 0
        except (BrokerConnectionError, pika.exceptions.AMQPError, OSError) as exc:
            del self.dramatiq.connection
            raise Unavailable("RabbitMQ does not answer") from exc
        return int(frame.method.message_count)

    def ping(self) -> None:
        """Raise Unavailable unless RabbitMQ answers a round trip on the probe's long-lived connection."""

        def round_trip(connection: pika.BlockingConnection) -> None:
            connection.channel().close()

        self._probe.use(round_trip)

    def queue_stats(self, tasks: list[Task]) -> dict[str, dict[str, int]]:
        """Messages waiting and consumers attached, per namespaced queue (zeros for a queue not declared yet)."""

        def read(connection: pika.BlockingConnection) -> dict[str, dict[str, int]]:
            stats = {}
            for task in tasks:
                channel = connection.channel()
                try:
                    frame = channel.queue_declare(self.queue(task), passive=True)
                except pika.exceptions.ChannelClosedByBroker:  # 404: nobody declared it yet (and the channel closed)
                    stats[self.queue(task)] = {"messages": 0, "consumers": 0}
                    continue
                stats[self.queue(task)] = {
                    "messages": frame.method.message_count,
                    "consumers": frame.method.consumer_count,
                }
                channel.close()
            return stats

        return self._probe.use(read)

    def close(self) -> None:
        """Close every connection this broker opened."""
        self._probe.close()
        self.dramatiq.close()
