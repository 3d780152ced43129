"""The durable baseline: what a minimal job system that records every job must do, as a bare Dramatiq actor.

Per job the sender (``bench.durable``) inserts a job document and enqueues its id; this actor claims
it with one update, fork/execs ``true`` under the limits quern's runner applies (core dumps off,
the app's rlimits, death with its runner), uploads its two logs in one S3 request and records the
end with one update. Nothing else: no events, no leases, no archive. Started as
``python -m dramatiq bench.durable_baseline``; ``BENCH_RABBITMQ_URL``, ``BENCH_QUEUE``, ``BENCH_OUT``,
``BENCH_MONGO_URL``, ``BENCH_S3_URL``, ``BENCH_BUCKET`` (and the S3 keys) configure it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from pymongo import MongoClient

PR_SET_PDEATHSIG = 1
# bench.latency.TRUE_APP's limits, as services/runner/launch.py sets them
LIMITS = (
    (resource.RLIMIT_CORE, 0),
    (resource.RLIMIT_AS, 256 * 2**20),
    (resource.RLIMIT_CPU, 10),
    (resource.RLIMIT_FSIZE, 1 * 2**20),
    (resource.RLIMIT_NOFILE, 64),
)

broker = RabbitmqBroker(url=os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
dramatiq.set_broker(broker)
mongo: MongoClient[dict[str, Any]] = MongoClient(os.environ.get("BENCH_MONGO_URL", "mongodb://127.0.0.1:27017"))
jobs = mongo["durable"]["jobs"]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ.get("BENCH_S3_URL"),
    region_name="us-east-1",
    aws_access_key_id=os.environ.get("BENCH_S3_KEY"),
    aws_secret_access_key=os.environ.get("BENCH_S3_SECRET"),
)
libc = ctypes.CDLL(None, use_errno=True)


def limited() -> None:
    """In the child, between fork and exec: the app's limits, and death with the worker (what launch.py does)."""
    for which, value in LIMITS:
        resource.setrlimit(which, (value, value))
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dramatiq.actor(queue_name=os.environ.get("BENCH_QUEUE", "quern-bench-durable"), max_retries=0, time_limit=60_000)
def run_durably(job_id: str, sent: float) -> None:
    """Claim, run ``true``, store its logs, finish; record (start, end) seconds since ``sent`` in ``BENCH_OUT``."""
    started = time.time()
    claimed = jobs.update_one(
        {"_id": job_id, "state": "QUEUED"},
        {"$set": {"state": "RUNNING", "started": datetime.now(UTC), "worker": os.getpid()}},
    )
    if not claimed.modified_count:
        return  # someone else has it: a redelivery
    # preexec_fn in a threaded worker is what a fork server written in C would do: nothing but
    # setrlimit and prctl run between fork and exec.
    done = subprocess.run(["/bin/true"], capture_output=True, preexec_fn=limited, check=False)
    logs = json.dumps({"stdout": done.stdout.decode(errors="replace"), "stderr": done.stderr.decode(errors="replace")})
    s3.put_object(Bucket=os.environ.get("BENCH_BUCKET", "quern-bench"), Key=f"durable/{job_id}/logs", Body=logs)
    jobs.update_one(
        {"_id": job_id},
        {"$set": {"state": "SUCCEEDED" if done.returncode == 0 else "FAILED", "finished": datetime.now(UTC)}},
    )
    ended = time.time()
    with open(os.environ["BENCH_OUT"], "a") as out:
        out.write(f"{started - sent} {ended - sent}\n")
