"""A baseline's Dramatiq worker: a process of its own on the stack's RabbitMQ, and the readings its actor wrote.

The actor module (``bench.bare_dramatiq``, ``bench.durable_baseline``) appends one line per message
to ``BENCH_OUT``: seconds from the message's ``sent`` stamp to the actor's start, and to its end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from devstack.stack import Stack


class Worker:
    """A ``python -m dramatiq MODULE`` worker on the stack's RabbitMQ, with its own queue and readings file."""

    def __init__(
        self, stack: Stack, work: Path, threads: int, *, module: str, actor: str, env: dict[str, str] | None = None
    ) -> None:
        self.actor = actor
        tag = uuid.uuid4().hex[:6]
        self.queue, self.out = f"quern-bench-{actor}-{tag}", work / f"{actor}-{tag}.txt"
        self.out.write_text("")
        environment = os.environ | {
            "BENCH_RABBITMQ_URL": stack.rabbitmq_url,
            "BENCH_QUEUE": self.queue,
            "BENCH_OUT": str(self.out),
            **(env or {}),
        }
        command = [sys.executable, "-m", "dramatiq", module, "--processes", "1", "--threads", str(threads)]
        self.worker = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.broker = RabbitmqBroker(url=stack.rabbitmq_url)

    def send(self, *args: Any) -> None:
        """Enqueue one message with ``args`` and, last, the time now."""
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue, actor_name=self.actor, args=(*args, time.time()), kwargs={}, options={}
        )
        self.broker.enqueue(message)

    def readings(self) -> list[tuple[float, float]]:
        """(send -> start, send -> end) of every message done so far."""
        assert self.worker.poll() is None, f"the {self.actor} worker died"
        return [(float(a), float(b)) for a, b in (line.split() for line in self.out.read_text().splitlines())]

    def wait_for(self, count: int, *, timeout: float, pause: float = 0.002) -> list[tuple[float, float]]:
        """The readings once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(lines := self.readings()) < count:
            assert time.monotonic() < deadline, f"the {self.actor} worker did not finish {count} messages"
            time.sleep(pause)
        return lines

    def close(self) -> None:
        self.broker.close()
        self.worker.terminate()
        self.worker.wait(timeout=30)


@contextmanager
def running(
    stack: Stack, work: Path, *, module: str, actor: str, threads: int = 2, env: dict[str, str] | None = None
) -> Iterator[Worker]:
    """A running ``Worker``, stopped afterwards."""
    worker = Worker(stack, work, threads, module=module, actor=actor, env=env)
    try:
        yield worker
    finally:
        worker.close()


@contextmanager
def bare_worker(stack: Stack, work: Path, *, threads: int = 2) -> Iterator[Worker]:
    """The bare (storeless) baseline's worker: ``bench.bare_dramatiq``."""
    with running(stack, work, module="bench.bare_dramatiq", actor="run_true", threads=threads) as worker:
        yield worker
