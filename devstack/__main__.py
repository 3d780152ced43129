"""``python -m devstack up|down|status``: the local stack behind ``just up`` and ``just down``."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from devstack.processes import PROJECT, ensure_rabbitmq, stop_rabbitmq
from devstack.stack import Stack
from quern.cli import main as quern

STATE = PROJECT / ".state"
RABBIT_MARKER = STATE / "rabbitmq.started-by-quern"
CREDENTIALS = STATE / "credentials.json"


def local_stack() -> Stack:
    """The development stack, with credentials made once and kept in .state/credentials.json (0600)."""
    if not CREDENTIALS.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        made = {"username": "admin", "password": secrets.token_urlsafe(18), "auth_secret": secrets.token_urlsafe(48)}
        fd = os.open(CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(made, handle, indent=2)
    saved = json.loads(CREDENTIALS.read_text())
    return Stack(
        state_dir=STATE,
        admin_username=saved["username"],
        admin_password=saved["password"],
        auth_secret=saved["auth_secret"],
    )


def up(stack: Stack, *, example: str | None) -> int:
    """Start everything that is not running, then run the example job end to end."""
    if ensure_rabbitmq():
        STATE.mkdir(parents=True, exist_ok=True)
        RABBIT_MARKER.touch()
        print("started RabbitMQ (rabbitmq-server -detached)")
    started = stack.start()
    print(f"started: {', '.join(started) or 'nothing (all running)'}; gateway {stack.gateway_url}")
    print(f"logs in {STATE / 'logs'}; admin login: {stack.admin_username}, password in {CREDENTIALS}")
    print(f"web UI: {stack.gateway_url}/ui (log in as the admin above)")
    if example is None:
        return 0
    os.environ["QUERN_USERNAME"], os.environ["QUERN_PASSWORD"] = stack.admin_username, stack.admin_password
    out = str(STATE / "downloads")
    return quern(["--url", stack.gateway_url, "example", example, "--apps-dir", str(PROJECT / "apps"), "--out", out])


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
    stack = local_stack()
    if args.action == "up":
        return up(stack, example=args.example or None)
    if args.action == "down":
        return down(stack)
    for process in stack.processes():
        print(f"{process.name:8} {'running' if process.running() else 'stopped'}  pid {process.pid() or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
