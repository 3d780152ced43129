"""``python -m devstack up|down|status``: the local stack behind ``just up`` and ``just down``."""

from __future__ import annotations

import argparse
import sys

from devstack.processes import PROJECT, ensure_rabbitmq, stop_rabbitmq
from devstack.stack import Stack
from quern.cli import main as quern

STATE = PROJECT / ".state"
RABBIT_MARKER = STATE / "rabbitmq.started-by-quern"


def up(stack: Stack, *, example: str | None) -> int:
    """Start everything that is not running, then run the example job end to end."""
    if ensure_rabbitmq():
        STATE.mkdir(parents=True, exist_ok=True)
        RABBIT_MARKER.touch()
        print("started RabbitMQ (rabbitmq-server -detached)")
    started = stack.start()
    print(
        f"started: {', '.join(started) or 'nothing (all running)'}; gateway {stack.gateway_url}; logs in {STATE}/logs"
    )
    if example is None:
        return 0
    return quern(
        [
            "--url",
            stack.gateway_url,
            "example",
            example,
            "--apps-dir",
            str(PROJECT / "apps"),
            "--out",
            str(STATE / "downloads"),
        ]
    )


def down(stack: Stack) -> int:
    """Stop exactly what ``up`` started."""
    stopped = stack.stop()
    if RABBIT_MARKER.exists():
        stop_rabbitmq()
        RABBIT_MARKER.unlink()
        stopped.append("rabbitmq")
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="devstack")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--example", default="flood", help="app whose example to run after up ('' for none)")
    args = parser.parse_args()
    stack = Stack(state_dir=STATE)
    if args.action == "up":
        return up(stack, example=args.example or None)
    if args.action == "down":
        return down(stack)
    for process in stack.processes():
        print(f"{process.name:8} {'running' if process.running() else 'stopped'}  pid {process.pid() or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
