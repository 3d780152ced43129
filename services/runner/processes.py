"""An app's process from start to end: argv filled in without a shell, started through a driver, stopped on demand.

The driver (``services.runner.drivers``) says what to start and with which environment; this
module starts it in its own session and process group, waits, and ends the group on timeout or stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from services.runner.drivers import Driver
from services.runner.sandbox import Sandbox
from shared.apps import PLACEHOLDER, AppSpec
from shared.errors import Invalid

TERM_GRACE_SECONDS = 5.0
DISK_CHECK_SECONDS = 2.0


def render_value(value: Any) -> str:
    """A parameter as one argv string: JSON spelling for numbers and booleans, strings as they are."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise Invalid(f"parameter value {value!r} cannot be placed on a command line")


def build_argv(
    spec: AppSpec, params: dict[str, Any], inputs: dict[str, Path], *, python: str, app_dir: Path
) -> list[str]:
    """Fill the app's command template; each template element becomes exactly one argument."""
    builtins = {"app_dir": str(app_dir), "python": python}

    def fill(match: Any) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "params":
            return render_value(params[name])
        if kind == "inputs":
            return str(inputs[name])
        return builtins[kind]

    return [PLACEHOLDER.sub(fill, element) for element in spec.command]


@dataclass(frozen=True)
class Exit:
    """How the app's process ended."""

    code: int | None
    timed_out: bool = False
    stopped: bool = False
    over_disk_mb: int | None = None  # the disk limit its directory went over (it was stopped, or ended, over it)


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        _kill_group(process.pid, signal.SIGKILL)
        await process.wait()


async def _watch_disk(sandbox: Sandbox, limit_mb: int) -> None:
    """Return once the app's part of its directory holds more than ``limit_mb``, looking every few seconds.

    The first look is a few seconds in: at the start the app has written nothing yet, and a run
    that ends before is looked at once it has ended (``run_process``).
    """
    while True:
        await asyncio.sleep(DISK_CHECK_SECONDS)
        if await asyncio.to_thread(sandbox.disk_use) > limit_mb * 2**20:
            return


async def run_app(
    argv: list[str],
    *,
    sandbox: Sandbox,
    spec: AppSpec,
    timeout: float,
    stop: asyncio.Event,
    driver: Driver,
    grace: float = TERM_GRACE_SECONDS,
    max_disk_mb: int | None = None,
    fresh: bool = False,
) -> Exit:
    """Run argv through ``driver`` in its own session and process group until it exits, times out or ``stop`` is set.

    On timeout or stop the whole group gets SIGTERM, then SIGKILL after ``grace`` seconds; then
    the driver removes whatever of the run outlived the group (a container). With
    ``max_disk_mb``, an app whose directory grows over it is stopped the same way. Before the run
    the driver removes a leftover of an earlier one on this machine, unless the job is ``fresh`` (on its first run).
    """
    await driver.clean_up(sandbox.job_id, fresh=fresh)
    command = driver.command(argv, sandbox=sandbox, spec=spec)
    return await run_process(
        command,
        pass_fds=driver.pass_fds(sandbox.job_id),
        env=driver.environment(sandbox, spec),
        sandbox=sandbox,
        timeout=timeout,
        stop=stop,
        clean_up=lambda: driver.clean_up(sandbox.job_id),
        grace=grace,
        max_disk_mb=max_disk_mb,
    )


async def run_process(
    command: list[str],
    *,
    env: dict[str, str],
    sandbox: Sandbox,
    timeout: float,
    stop: asyncio.Event,
    clean_up: Callable[[], Awaitable[None]],
    grace: float = TERM_GRACE_SECONDS,
    max_disk_mb: int | None = None,
    stdin: BinaryIO | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Exit:
    """Run a command built by a driver, appending to the job's logs, and stop it as ``run_app`` says.

    ``stdin``, an open file, is what it reads (else nothing); ``clean_up`` removes what outlived it.
    ``pass_fds`` are inherited by the command, and closed here once it started.
    """
    try:
        with sandbox.stdout.open("ab") as out, sandbox.stderr.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=sandbox.root,  # the runner's; the launcher enters run/ once it is the app's user
                env=env,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=pass_fds,
            )
    except OSError:
        await clean_up()  # what the driver kept for the run
        raise
    finally:
        for fd in pass_fds:
            os.close(fd)
    exited = asyncio.ensure_future(process.wait())
    stopping = asyncio.ensure_future(stop.wait())
    # Never done without a limit; with one, done when the directory went over it.
    filling = asyncio.ensure_future(_watch_disk(sandbox, max_disk_mb) if max_disk_mb else asyncio.Event().wait())
    try:
        await asyncio.wait({exited, stopping, filling}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            # A quick app may fill its directory between two looks: the last look is after it ended.
            over = max_disk_mb is not None and await asyncio.to_thread(sandbox.disk_use) > max_disk_mb * 2**20
            return Exit(code=exited.result(), over_disk_mb=max_disk_mb if over else None)
        await _stop(process, grace)
        if filling.done() and not stopping.done():
            return Exit(code=None, over_disk_mb=max_disk_mb)
        return Exit(code=None, timed_out=not stopping.done(), stopped=stopping.done())
    finally:
        stopping.cancel()
        filling.cancel()
        # Whatever the app left running in its group dies with it.
        _kill_group(process.pid, signal.SIGKILL)
        await clean_up()
