"""``python -m devstack.multihost`` (``just multihost``): runners on two hosts of their own, one cut off mid-run.

Needs root (``ip netns``). It makes a bridge and three network namespaces joined to it by veth
pairs, each a host with its own address:

- ``10.77.0.1``, the bridge itself: the S3 and Mongo stand-ins, and a relay to the machine's
  RabbitMQ (which listens on 127.0.0.1 only);
- ``10.77.0.2``: the gateway;
- ``10.77.0.3`` and ``10.77.0.4``: one runner each.

The results worker runs beside the servers. It submits ``--jobs`` short jobs, cuts the first
runner's host off the network (its link goes down) once some of them are done, and waits for
all of them to end. It prints ``multihost: hosts=H jobs=N succeeded=S recovered=R`` and exits
non-zero unless every job succeeded, both runner hosts ran jobs and at least one job was
recovered from the host that was cut off. Every namespace and link it made is removed at the
end, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devstack.processes import (
    SANDBOX_PACKAGES,
    Process,
    ensure_commands,
    ensure_rabbitmq,
    http_ok,
    venv_bin,
    wait_until,
)
from devstack.stack import Ports, Stack
from shared.tasks import RUNNER_SERVICE

BRIDGE, SUBNET = "quern-mh0", "10.77.0"
SERVERS = f"{SUBNET}.1"
HOSTS = {"quern-mh-gw": f"{SUBNET}.2", "quern-mh-r1": f"{SUBNET}.3", "quern-mh-r2": f"{SUBNET}.4"}
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"}
SLEEP_APP = {
    "name": "multihost-sleep",
    "version": "1.0.0",
    "description": "Sleeps half a second: long enough to be running when its host is cut off.",
    "command": ["/bin/sleep", "0.5"],
    "parameters": {"type": "object", "additionalProperties": False, "properties": {}},
    "inputs": {},
    "outputs": ["*"],
    "timeout": {"default": 60, "max": 60},
    "limits": {"memory_mb": 256, "cpu_seconds": 10, "file_size_mb": 1, "open_files": 64},
}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def network() -> Iterator[None]:
    """The bridge and the hosts' namespaces, each with a veth pair; all removed afterwards (and before, if a
    run that was killed left them)."""
    remove_network()
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SERVERS}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for namespace, address in HOSTS.items():
            ip("netns", "add", namespace)
            ip("link", "add", link(namespace), "type", "veth", "peer", "name", "eth0", "netns", namespace)
            ip("link", "set", link(namespace), "master", BRIDGE, "up")
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield
    finally:
        remove_network()


def remove_network() -> None:
    """Delete this program's veth pairs, namespaces and bridge, whichever are present."""
    for namespace in HOSTS:
        # The pair goes with its namespace only once the kernel has released that: delete it first.
        subprocess.run(["ip", "link", "del", link(namespace)], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


def link(namespace: str) -> str:
    """The bridge's end of a host's veth pair (at most 15 characters)."""
    return "v-" + namespace.removeprefix("quern-")


class Relay:
    """Forwards ``SERVERS:port`` to 127.0.0.1:``target``: the hosts reach the machine's RabbitMQ through it."""

    def __init__(self, port: int, target: int) -> None:
        self.listener = socket.create_server((SERVERS, port))
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def processes(stack: Stack, work: Path, rabbit_port: int) -> list[Process]:
    """The stand-ins on the servers' address, the gateway and the runners in their namespaces, results beside."""
    env = stack.env() | {
        # Short heartbeats: a host cut off is noticed in seconds, by the reaper and by RabbitMQ.
        "RABBITMQ_URL": f"amqp://guest:guest@{SERVERS}:{rabbit_port}/%2F?heartbeat=5",
        "S3_ENDPOINT_URL": f"http://{SERVERS}:{stack.ports.s3}",
        "S3_PUBLIC_ENDPOINT_URL": f"http://{SERVERS}:{stack.ports.s3}",
        "MONGO_URL": f"mongodb://{SERVERS}:{stack.ports.mongo}",
        "GATEWAY_HOST": HOSTS["quern-mh-gw"],
        "WORKER_HEARTBEAT_SECONDS": "1",
        "MONGO_TIMEOUT_SECONDS": "3",
    }
    mongo = [venv_bin("secantusd-py"), "--standalone", "--host", SERVERS, "--port", str(stack.ports.mongo)]
    in_netns = ["ip", "netns", "exec"]
    python = sys.executable
    return [
        Process("s3", [venv_bin("moto_server"), "-H", SERVERS, "-p", str(stack.ports.s3)], work),
        Process("mongo", [*mongo, "--storage-path", str(work / "mongo"), "--log-level", "WARNING"], work),
        Process("gateway", [*in_netns, "quern-mh-gw", python, "-m", "services.gateway"], work, env),
        *(
            Process(
                f"runner-{n}",
                [*in_netns, f"quern-mh-r{n}", python, "-m", "services.runner"],
                work,
                env | {"RUNNER_ID": f"runner-{n}", "WORK_DIR": str(work / f"work-{n}")},
            )
            for n in (1, 2)
        ),
        Process("results", [python, "-m", "services.results"], work, env),
    ]


def run(jobs: int, timeout: float) -> dict[str, Any]:
    """Start everything, run ``jobs`` jobs, cut runner 1's host off; the counts."""
    ensure_rabbitmq()
    ensure_commands(SANDBOX_PACKAGES)
    with tempfile.TemporaryDirectory(prefix="quern-multihost-") as folder, network():
        work = Path(folder)
        ports = Ports(s3=19000, mongo=27117, gateway=8000)  # on the hosts' own addresses
        stack = Stack(state_dir=work, ports=ports, namespace=f"quern-mh-{uuid.uuid4().hex[:8]}")
        relay = Relay(5672, 5672)
        started = processes(stack, work, 5672)
        try:
            for process in started:
                process.start()
            gateway = f"http://{HOSTS['quern-mh-gw']}:8000"
            wait_until(lambda: http_ok(f"{gateway}/readyz"), "the gateway on its host", timeout=90, process=started[2])
            return drive(gateway, stack, [p for p in started if p.name.startswith("runner-")], jobs, timeout)
        except Exception:
            for process in started:  # what each host said, before its logs go with the temporary directory
                tail = process.logfile.read_text(errors="replace").splitlines()[-5:] if process.logfile.exists() else []
                print(f"--- {process.name}", *tail, sep="\n", file=sys.stderr)
            raise
        finally:
            for process in reversed(started):
                process.stop(timeout=10)
            relay.close()


def started_by(runner: Process) -> set[str]:
    """Ids of the jobs a runner logged starting (its log is the host's own record of what it ran)."""
    found = set()
    if runner.logfile.exists():
        for line in runner.logfile.read_text(errors="replace").splitlines():
            if '"job_started"' in line:
                try:
                    found.add(str(json.loads(line)["job_id"]))
                except (ValueError, KeyError):
                    continue
    return found


def drive(gateway: str, stack: Stack, runners: list[Process], count: int, timeout: float) -> dict[str, Any]:
    """Submit ``count`` jobs, cut the first runner's host off while it runs some; the counts."""
    login = {"username": stack.admin_username, "password": stack.admin_password}
    token = httpx.post(f"{gateway}/v1/auth/login", json=login, timeout=30).json()["access_token"]
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        assert client.post("/v1/apps", json=SLEEP_APP).status_code in (201, 409)
        deadline = time.monotonic() + 60
        while sum(w.get("service") == RUNNER_SERVICE for w in client.get("/v1/cluster").json()["workers"]) < 2:
            assert time.monotonic() < deadline, "the two runners did not both report"
            time.sleep(0.5)
        batch = [{"app": SLEEP_APP["name"]}] * count
        submitted = client.post("/v1/jobs/batch", json={"jobs": batch})
        assert submitted.status_code == 201, submitted.text
        ids = [job["id"] for job in submitted.json()["items"]]
        cut = False
        deadline = time.monotonic() + timeout
        while True:
            jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
            ended = [job for job in jobs if job["state"] in TERMINAL]
            running = {job["id"] for job in jobs if job["state"] == "RUNNING"}
            if not cut and len(ended) >= count // 4 and running & started_by(runners[0]):
                ip("link", "set", link("quern-mh-r1"), "down")  # runner 1's host drops off the network
                cut = True
                print(f"multihost: cut runner-1's host off with {len(running & started_by(runners[0]))} jobs running")
            if len(ended) == count or time.monotonic() > deadline:
                break
            time.sleep(1)
    return {
        "jobs": count,
        "succeeded": sum(job["state"] == "SUCCEEDED" for job in jobs),
        "recovered": sum(job.get("attempt", 1) > 1 for job in jobs),
        "ran": [len(started_by(runner) & set(ids)) for runner in runners],
        "cut": cut,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.multihost", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("multihost: needs root and iproute2's ip (network namespaces)", file=sys.stderr)
        return 2
    result = run(args.jobs, args.timeout)
    print(f"multihost: runner-1 started {result['ran'][0]} jobs, runner-2 {result['ran'][1]}")
    print(
        f"multihost: hosts={len(HOSTS) + 1} jobs={result['jobs']} succeeded={result['succeeded']} "
        f"recovered={result['recovered']}"
    )
    both = all(result["ran"])
    ok = result["succeeded"] == result["jobs"] and both and result["recovered"] >= 1 and result["cut"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
