"""``python -m devstack.chaos`` (``just chaos``): break the stack on purpose and count what was lost.

It starts a stack of its own (free ports, its own namespace, database and bucket) and then:

1. kills the runner with SIGKILL while jobs run, ``--kills`` times, starting a new one each time;
2. stops RabbitMQ while ``--jobs`` jobs are being submitted, and starts it again;
3. restarts three runners in turn with SIGTERM (a rolling deploy) while ``--rolling`` jobs,
   some longer than the drain and some depending on those, are in flight;
4. kills a runner with SIGKILL and starts it again at once under the same ``RUNNER_ID``;
5. cuts a runner off from Mongo (not from S3) while its app runs, and lets another take over.

Then it waits for every accepted job to end and prints
``chaos: jobs=N lost=L stuck=S double_runs=D preempted_failed=P``: lost are submissions not
answered 201 or jobs that vanished, stuck are jobs not ended by the deadline, double runs are runs
started more often than the job's attempts and preemptions, preempted_failed are jobs of the
rolling restart that did not succeed, plus those of scenario 4 not recovered by lease and a
scenario 5 whose packaged output is not the new attempt's (or whose stale uploads were kept).
It exits non-zero unless all are 0. RabbitMQ is the machine's own: stopping it interrupts
anything else using it.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import pika

from devstack.chaos.apps import SLEEPER, WHERE, register_script
from devstack.chaos.cutoff import cut_off_from_mongo
from devstack.chaos.outages import kill_runners, rabbitmq_outage
from devstack.chaos.restarts import kill_and_restart_same_id, not_recovered_by_lease
from devstack.chaos.rolling import not_succeeded, rolling_restart
from devstack.chaos.runners import runner, start
from devstack.chaos.tally import login, settle
from devstack.processes import Process, ensure_rabbitmq, free_port, port_open
from devstack.stack import Ports, Stack
from devstack.tcp_proxy import TcpProxy
from shared.tasks import PACKAGE_RESULTS, RUN_JOB

DRAIN_SECONDS = 3
APP_GRACE_SECONDS = 2


def delete_queues(stack: Stack) -> None:
    """Remove the RabbitMQ queues of the chaos stack's namespace."""
    connection = pika.BlockingConnection(pika.URLParameters(stack.rabbitmq_url))
    try:
        for task in (RUN_JOB, PACKAGE_RESULTS):
            for suffix in ("", ".DQ", ".XQ"):
                channel = connection.channel()
                channel.queue_delete(task.queue_name(stack.namespace) + suffix)
                channel.close()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    """Run every scenario against a stack of its own; 0 only if nothing was lost, stuck, run twice or failed."""
    parser = argparse.ArgumentParser(prog="python -m devstack.chaos")
    parser.add_argument("--kills", type=int, default=10, help="runner SIGKILLs mid-job (default 10)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=200,
        help="jobs submitted across the RabbitMQ outage (default 200; 0 skips the outage)",
    )
    parser.add_argument("--rolling", type=int, default=200, help="jobs in flight in the rolling restart (default 200)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every job to end")
    args = parser.parse_args(argv)
    ensure_rabbitmq()
    tag = uuid.uuid4().hex[:8]
    stack = Stack(
        state_dir=Path(tempfile.mkdtemp(prefix="quern-chaos-")),
        ports=Ports(s3=free_port(), mongo=free_port(), gateway=free_port()),
        namespace=f"quern-chaos-{tag}",
        database=f"quern_chaos_{tag}",
        bucket=f"quern-chaos-{tag}",
        extra_env={
            "WORKER_HEARTBEAT_SECONDS": "1",
            "DISPATCH_INTERVAL_SECONDS": "0.2",
            "MAX_ATTEMPTS": "50",
            "JOB_LEASE_SECONDS": "6",
            "DRAIN_SECONDS": str(DRAIN_SECONDS),
            "APP_GRACE_SECONDS": str(APP_GRACE_SECONDS),
        },
    )
    print(f"chaos: stack in {stack.state_dir} (gateway {stack.gateway_url})", flush=True)
    extra: list[Process] = []
    proxy = TcpProxy("127.0.0.1", stack.ports.mongo)
    try:
        stack.start()
        api = login(stack)
        try:
            killed = kill_runners(stack, api, args.kills)
            accepted, refused = rabbitmq_outage(stack, api, args.jobs) if args.jobs else ([], 0)
            sleeper = register_script(api, SLEEPER, seconds_param=True)
            where = register_script(api, WHERE, seconds_param=False)
            stack.services()[1].stop(timeout=60)

            fleet = [runner(stack, name, RUNNER_CONCURRENCY="4") for name in ("a", "b", "c")]
            extra += fleet
            for process in fleet:
                start(process)
            rolled, stops = rolling_restart(api, sleeper, fleet, args.rolling)

            settle(stack, api, rolled, args.timeout)  # the runner killed next holds only the jobs submitted to it
            for process in fleet[1:]:
                process.stop(timeout=120)
            same_id = kill_and_restart_same_id(api, sleeper, fleet[0])
            settle(stack, api, same_id, args.timeout)
            fleet[0].stop(timeout=120)

            proxy.up()
            cut = runner(stack, "cut", MONGO_URL=f"mongodb://127.0.0.1:{proxy.port}", MONGO_TIMEOUT_SECONDS="1")
            extra.append(cut)
            start(cut)
            cut_off = cut_off_from_mongo(stack, api, where, cut, fleet[1], proxy)

            job_ids = killed + accepted + rolled + same_id + [cut_off.job_id]
            outcome = settle(stack, api, job_ids, args.timeout)
            broken = not_succeeded(api, rolled)
            unrecovered = not_recovered_by_lease(api, same_id)
        finally:
            api.close()
    finally:
        for process in [*extra, *reversed(stack.processes())]:
            process.stop(timeout=120)
        proxy.close()
        if not port_open("127.0.0.1", 5672):
            ensure_rabbitmq()
        delete_queues(stack)
    lost = outcome.lost + refused
    print(
        f"chaos: states {outcome.by_state}; run again after a kill {outcome.rerun}; refused {refused}; "
        f"preempted by the rolling restart {outcome.preempted}",
        flush=True,
    )
    drain = DRAIN_SECONDS + APP_GRACE_SECONDS
    print(
        f"chaos: rolling restart: each runner stopped in {min(stops):.1f}-{max(stops):.1f} s "
        f"(drain {DRAIN_SECONDS} s + grace {APP_GRACE_SECONDS} s = {drain} s, then the hand-back)",
        flush=True,
    )
    print(
        f"chaos: same-id restart: {len(same_id) - len(unrecovered)}/{len(same_id)} recovered by lease; "
        f"cut-off: new attempt packaged {cut_off.packaged_right}, stale objects {cut_off.stale_objects}",
        flush=True,
    )
    preempted_failed = len(broken) + len(unrecovered) + (not cut_off.packaged_right) + cut_off.stale_objects
    stuck, doubles = outcome.stuck, outcome.double_runs
    print(
        f"chaos: jobs={len(job_ids) + refused} lost={lost} stuck={stuck} double_runs={doubles} "
        f"preempted_failed={preempted_failed}"
    )
    return 0 if lost == stuck == doubles == preempted_failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
