"""One long-lived RabbitMQ connection for health checks and queue depths, shared by the threads that ask.

A readiness probe every few seconds, ``GET /v1/cluster`` and the gateway's metrics would each open
and close a connection (an AMQP handshake, a login, a log line on the broker) were they not to share
this one. Its users take turns: a ``BlockingConnection`` is not thread-safe. AMQP heartbeats close
it when the broker stops answering, so a round trip left waiting on a dead peer ends, and the next
user opens a new one. A connection found closed (the broker restarted, or dropped it while idle) is
replaced once before a failure is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pika
import pika.exceptions

from shared.errors import Unavailable

T = TypeVar("T")
CONNECT_SECONDS = 2  # to open the connection (TCP, AMQP handshake)
HEARTBEAT_SECONDS = 15  # a silent broker is given up after two or three of these; an idle one keeps it as long
WAIT_SECONDS = 3.0  # for another user's turn (a round trip on a dying connection) before saying RabbitMQ is stuck


class Probe:
    """Runs short operations on one connection to the first of ``urls`` (the nodes of one cluster) that answers."""

    def __init__(self, urls: list[str]) -> None:
        self._urls = urls
        self._connection: pika.BlockingConnection | None = None
        self._lock = threading.Lock()

    def use(self, work: Callable[[pika.BlockingConnection], T]) -> T:
        """``work(connection)``'s result; Unavailable if RabbitMQ does not answer (on a fresh connection too)."""
        if not self._lock.acquire(timeout=WAIT_SECONDS):
            raise Unavailable("RabbitMQ has not answered an earlier check yet")
        try:
            reused = self._connection is not None
            try:
                return work(self._open())
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._drop()
                if not reused:
                    raise Unavailable("RabbitMQ does not answer") from exc
            try:  # the connection kept from an earlier turn had gone stale: once more, on a new one
                return work(self._open())
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._drop()
                raise Unavailable("RabbitMQ does not answer") from exc
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection (if open); the next ``use`` opens another."""
        if self._lock.acquire(timeout=WAIT_SECONDS):
            try:
                self._drop()
            finally:
                self._lock.release()

    def _open(self) -> pika.BlockingConnection:
        if self._connection is not None and self._connection.is_open:
            self._connection.process_data_events(0)  # heartbeats and a close the broker sent while it was idle
            return self._connection
        failure: Exception | None = None
        for url in self._urls:
            params = pika.URLParameters(url)
            params.socket_timeout = CONNECT_SECONDS
            params.blocked_connection_timeout = CONNECT_SECONDS
            params.connection_attempts = 1
            params.heartbeat = HEARTBEAT_SECONDS
            try:
                self._connection = pika.BlockingConnection(params)
                return self._connection
            # pika raises ValueError ("Expected connected socket") for a connection reset as it is made.
            except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
                failure = exc
        raise Unavailable("RabbitMQ does not answer") from failure

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass  # closing one already broken: nothing to save
