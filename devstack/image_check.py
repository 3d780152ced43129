"""``python -m devstack.image_check`` (``just image-check``): the image is real, built and run here.

No container registry is reachable from the development machines, so the image is built
offline with Debian's podman, as root:

1. **The base**: ``mmdebstrap`` makes a Debian 12 root with ``BASE_PACKAGES`` from Debian's
   mirrors (its default for a stable suite: the release, updates and security), ``podman
   import``-ed as ``localhost/quern-base:bookworm-<hash>`` (a hash of what goes in), so it is
   made once per machine and change of the list and reused after.
2. **The wheels**: ``pip wheel`` on this machine (which reaches the package index) fills a
   wheelhouse; ``podman build`` mounts it, and ``deploy/Dockerfile`` installs from it with
   ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS``: the build itself reaches no network.
3. **The image**: ``deploy/Dockerfile`` as it is, given its ``BASE`` argument and the wheelhouse,
   built with ``--network none``; the image the previous check built is removed.
4. **The run**: the S3 and Mongo stand-ins (moto_server, secantusd-py) on free ports and the
   machine's RabbitMQ, as ``just up`` has them; the gateway, runner and results in containers
   of the image with ``--network=host``, in a queue namespace, database and bucket of their own;
   the runner with exactly what bubblewrap needs (``RUNNER_SECURITY``, as in deploy/compose.yml).
   The gateway's ``HEALTHCHECK`` must pass, and a runner container without ``RUNNER_SECURITY``
   must refuse to start. The example job goes in through the quern CLI from this venv, and must
   end SUCCEEDED on the container's runner, its download holding every output the app declares.
   The containers are removed at the end, whatever happened; their logs stay in
   ``.state/image-check/logs``.

It ends with one line of figures, and exits 1 naming the step that failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from devstack.processes import PROJECT, ensure_commands, ensure_rabbitmq, free_port, http_ok, stop_rabbitmq, wait_until
from devstack.stack import Ports, Stack
from quern.cli import main as quern
from quern.client import Client

STATE = PROJECT / ".state" / "image-check"
IMAGE = "localhost/quern:image-check"
BASE = "localhost/quern-base"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "bubblewrap", "ca-certificates")
# Manual pages, documentation and translations stay out of the base (licences stay in).
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
)
TOOLS = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}
# Podman cannot start a container on this machine without explicit limits (see services/runner/containers.py).
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# What the runner's bubblewrap needs in its container, the very options deploy/compose.yml gives it (not
# privileged; docs/sandboxing.md): without seccomp=unconfined bwrap "Can't set hostname", without an unmasked
# /proc (systempaths=unconfined, podman's unmask=ALL) it "Can't mount proc"; apparmor=unconfined for AppArmor hosts.
RUNNER_SECURITY = (
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
)
SERVICES = ("gateway", "runner", "results")
EXAMPLE = "flood"


class Failed(Exception):
    """A step of the check went wrong; the message says how."""


# The OCI runtime podman is told to use, when its own cannot start containers here (choose_runtime).
RUNTIME: list[str] = []


def podman(*args: str, timeout: float = 900) -> str:
    """Run podman with the runtime chosen for this machine; its stdout, or Failed with its stderr."""
    done = subprocess.run(["podman", *RUNTIME, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise Failed(f"podman {args[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def base_image() -> tuple[str, float | None]:
    """The offline base (made unless present) and the seconds making it took (None when reused)."""
    recipe = repr((SUITE, BASE_PACKAGES, DPKG_OPTIONS)).encode()
    tag = f"{BASE}:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0:
        return tag, None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quern-base-", dir=STATE) as staging:
        root = Path(staging) / "root.tar"
        options = [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
        made = subprocess.run(
            [
                "mmdebstrap",
                "--variant=apt",
                f"--include={','.join(BASE_PACKAGES)}",
                *options,
                SUITE,
                str(root),  # no mirror given: mmdebstrap's default, Debian's, with updates and security
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if made.returncode != 0:
            raise Failed(f"mmdebstrap exited {made.returncode}: {made.stderr.strip()[-2000:]}")
        changes = ["--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        podman("import", *changes, "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["/bin/bash"]', str(root), tag)
    return tag, time.monotonic() - started


def choose_runtime(base: str) -> None:
    """podman's own runtime where it can start a container, else runc (crun refuses hybrid cgroup hosts)."""
    probe = ["run", "--rm", "--network", "none", *ULIMITS, base, "true"]
    try:
        podman(*probe, timeout=120)
    except Failed:
        RUNTIME[:] = ["--runtime", "runc"]
        podman(*probe, timeout=120)


def wheelhouse() -> Path:
    """The project's dependencies and its build backend as wheels, built on this machine."""
    wheels = STATE / "wheelhouse"
    shutil.rmtree(wheels, ignore_errors=True)
    # The requirements, not the project: the image builds quern from the sources it copies (and a build here
    # would leave build/ in the work tree).
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), *requirements]
    done = subprocess.run(build, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise Failed(f"pip wheel exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return wheels


def build(base: str, wheels: Path) -> float:
    """Build deploy/Dockerfile from ``base`` with ``wheels`` and no network; the seconds it took."""
    started = time.monotonic()
    inspect = ["podman", "image", "inspect", "--format", "{{.Id}}", IMAGE]
    previous = subprocess.run(inspect, capture_output=True, text=True, timeout=60, check=False)
    podman(
        "build",
        "--layers=false",  # no intermediate images left behind: the wheels' install dominates the time anyway
        "--format", "docker",  # keeps the Dockerfile's HEALTHCHECK, which OCI images cannot carry
        "--network", "none",
        *ULIMITS,
        "--file", str(PROJECT / "deploy" / "Dockerfile"),
        "--tag", IMAGE,
        "--build-arg", f"BASE={base}",
        "--volume", f"{wheels}:/wheelhouse:ro",
        "--build-arg", "PIP_NO_INDEX=1",
        "--build-arg", "PIP_FIND_LINKS=/wheelhouse",
        str(PROJECT),
    )  # fmt: skip
    seconds = time.monotonic() - started
    if previous.returncode == 0:  # the last check's image, untagged now (kept while a container still uses it)
        subprocess.run(["podman", "rmi", previous.stdout.strip()], capture_output=True, timeout=120, check=False)
    return seconds


def start_services(stack: Stack, run: str, names: dict[str, str]) -> None:
    """The three services in containers of the image, on this machine's network, named in ``names`` first."""
    env = {key: value for key, value in stack.env().items() if key not in {"APPS_DIR", "WORK_DIR"}}
    env["RUNNER_ID"] = f"{run}-runner"
    env_file = STATE / "services.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    for service in SERVICES:
        names[service] = f"{run}-{service}"
        # The workers have no healthcheck, as in compose; only the runner's sandbox needs more.
        extra = () if service == "gateway" else ("--health-cmd", "none")
        extra = (*RUNNER_SECURITY, *extra) if service == "runner" else extra
        podman(
            "run", "--detach", "--name", names[service], "--network", "host", *ULIMITS, *extra,
            "--env-file", str(env_file), IMAGE, "python", "-m", f"services.{service}",
        )  # fmt: skip


def wait_ready(stack: Stack, names: dict[str, str]) -> None:
    """Until the gateway answers /readyz and both workers have logged worker_started; Failed if one exits."""

    def up(service: str) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", names[service]).strip()
        if state != "true":
            raise Failed(f"the {service} container exited: {logs(names[service])[-2000:]}")
        if service == "gateway":
            return http_ok(f"{stack.gateway_url}/readyz")
        return '"event": "worker_started"' in logs(names[service])

    for service in SERVICES:
        wait_until(lambda: up(service), f"the {service} container", timeout=120)  # noqa: B023  (called at once)
    podman("healthcheck", "run", names["gateway"])  # the image's HEALTHCHECK passes


def runner_refuses_without_its_options(run: str, names: dict[str, str]) -> None:
    """A runner container without ``RUNNER_SECURITY`` exits at start saying its sandbox cannot work."""
    names["unconfined-runner"] = name = f"{run}-unconfined-runner"  # removed with the others if it hangs
    done = subprocess.run(
        ["podman", *RUNTIME, "run", "--rm", "--name", name, "--network", "host", *ULIMITS,
         "--health-cmd", "none", "--env-file", str(STATE / "services.env"), IMAGE, "python", "-m", "services.runner"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode == 0 or "LOCAL_SANDBOX: bubblewrap cannot make the app sandbox" not in done.stderr:
        raise Failed(f"a runner without {' '.join(RUNNER_SECURITY)} did not refuse to start: {done.stderr[-2000:]}")


def logs(name: str) -> str:
    """A container's output so far."""
    done = subprocess.run(["podman", "logs", name], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def run_example(stack: Stack, runner_id: str) -> tuple[str, float, list[str]]:
    """The example job through the CLI; its id, seconds and outputs, once SUCCEEDED and downloaded."""
    os.environ["QUERN_USERNAME"], os.environ["QUERN_PASSWORD"] = stack.admin_username, stack.admin_password
    out = STATE / "downloads"
    started = time.monotonic()
    code = quern(
        ["--url", stack.gateway_url, "example", EXAMPLE, "--apps-dir", str(PROJECT / "apps"), "--out", str(out)]
    )
    seconds = time.monotonic() - started
    with Client(stack.gateway_url) as client:
        client.login(stack.admin_username, stack.admin_password)
        jobs = list(client.jobs.list(app=EXAMPLE))
        workers = [worker.id for worker in client.cluster().workers]  # each is its RUNNER_ID, then a suffix
    if code != 0 or len(jobs) != 1 or jobs[0].state != "SUCCEEDED":
        raise Failed(f"quern example exited {code}; jobs: {[(job.id, job.state, job.error) for job in jobs]}")
    if not any(worker.startswith(f"{runner_id}-") for worker in workers):
        raise Failed(f"the runner container ({runner_id}) is not among the cluster's workers {workers}")
    declared = json.loads((PROJECT / "apps" / EXAMPLE / "app.json").read_text())["outputs"]
    got = {path.name for path in (out / jobs[0].id).rglob("*") if path.is_file()}
    if missing := sorted(set(declared) - got):
        raise Failed(f"job {jobs[0].id} SUCCEEDED but its download lacks {missing}")
    return jobs[0].id, seconds, declared


def remove(names: dict[str, str]) -> None:
    """Keep each container's log, then remove it (one at a time: podman 4 skips all on one unknown name)."""
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    for service, name in names.items():
        (STATE / "logs" / f"{service}.log").write_text(logs(name))
        subprocess.run(["podman", "rm", "--force", "--time", "10", name], capture_output=True, timeout=60, check=False)


def check(steps: list[str]) -> str:
    """Every step in order, each named in ``steps`` as it starts; the line of figures, or Failed."""
    steps.append("installing podman, runc and mmdebstrap")
    ensure_commands(TOOLS)
    steps.append("making the base image with mmdebstrap")
    base, base_seconds = base_image()
    steps.append("starting a container of the base")
    choose_runtime(base)
    steps.append("building the wheelhouse on this machine")
    wheels = wheelhouse()
    steps.append("building deploy/Dockerfile")
    build_seconds = build(base, wheels)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).strip())
    run = f"quern-image-check-{os.urandom(4).hex()}"
    ports = Ports(s3=free_port(), mongo=free_port(), gateway=free_port())
    stack = Stack(state_dir=STATE, ports=ports, namespace=run, database=run, bucket=run)
    names: dict[str, str] = {}
    rabbit = False
    try:
        steps.append("starting RabbitMQ and the S3 and Mongo stand-ins")
        rabbit = ensure_rabbitmq()
        stack.start_servers()
        steps.append("starting the gateway, runner and results containers")
        start_services(stack, run, names)
        wait_ready(stack, names)
        steps.append("starting a runner container without the sandbox's options")
        runner_refuses_without_its_options(run, names)
        steps.append(f"running the {EXAMPLE} example job")
        job, seconds, outputs = run_example(stack, f"{run}-runner")
    finally:
        remove(names)
        stack.stop()
        shutil.rmtree(STATE / "mongo", ignore_errors=True)  # a database per run: none is read again
        if rabbit:
            stop_rabbitmq()
    made = "reused" if base_seconds is None else f"made in {base_seconds:.0f} s"
    runtime = RUNTIME[-1] if RUNTIME else podman("info", "--format", "{{.Host.OCIRuntime.Name}}").strip()
    return (
        f"image-check: passed: job {job} SUCCEEDED in {seconds:.1f} s ({', '.join(outputs)} downloaded) "
        f"on the gateway, runner and results of {IMAGE} ({size / 1e6:.0f} MB, built offline in {build_seconds:.0f} s; "
        f"base {base} {made}; runtime {runtime})"
    )


def main() -> int:
    if os.geteuid() != 0:
        print("image-check: FAILED: it runs podman as root (sudo just image-check)", file=sys.stderr)
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(STATE / "downloads", ignore_errors=True)
    steps = ["starting"]
    try:
        line = check(steps)
    except (Failed, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"image-check: FAILED at {steps[-1]}: {exc} (logs in {STATE / 'logs'})", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
