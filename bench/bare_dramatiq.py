"""The bare baseline: a Dramatiq actor on the same RabbitMQ that records how long each message took to start
and then fork/execs ``true``, as quern's runner would run an app. Started by ``bench.latency`` as
``python -m dramatiq bench.bare_dramatiq``; ``BENCH_RABBITMQ_URL``, ``BENCH_QUEUE`` and ``BENCH_OUT`` configure it.
"""

from __future__ import annotations

import os
import subprocess
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=os.environ.get("BENCH_QUEUE", "quern-bench-bare"), max_retries=0, time_limit=60_000)
def run_true(sent: float) -> None:
    """Record start and end latencies (seconds since ``sent``) as one line of ``BENCH_OUT``."""
    started = time.time()
    subprocess.run(["/bin/true"], check=True)
    ended = time.time()
    with open(os.environ["BENCH_OUT"], "a") as out:
        out.write(f"{started - sent} {ended - sent}\n")
