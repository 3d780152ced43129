"""An app's process: argv without a shell, a scrubbed environment, limits, and the end of its process group."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.runner.drivers import LocalDriver
from services.runner.processes import Exit, build_argv, render_value, run_app
from services.runner.sandbox import Sandbox
from shared.apps import AppSpec
from shared.errors import Invalid


def make_spec(tmp_path: Path, **overrides: Any) -> AppSpec:
    definition: dict[str, Any] = {
        "name": "probe",
        "version": "1",
        "description": "test app",
        "command": ["{python}", "{app_dir}/probe.py", "--rate={params.rate}", "{params.label}", "{inputs.data}"],
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "rate": {"type": "number", "default": 0.5},
                "label": {"type": "string", "default": "x"},
                "flag": {"type": "boolean", "default": True},
            },
        },
        "inputs": {"data": {"description": "input"}},
        "outputs": ["*.txt", "out/**/*.dat"],
        "timeout": {"default": 10, "max": 10},
    }
    definition.update(overrides)
    return AppSpec.model_validate(definition)


def test_argv_has_one_element_per_template_element(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    argv = build_argv(
        spec, {"rate": 2.5, "label": "a b; rm -rf /"}, {"data": Path("/w/in/x.csv")}, python="/py", app_dir=tmp_path
    )
    assert argv == ["/py", f"{tmp_path}/probe.py", "--rate=2.5", "a b; rm -rf /", "/w/in/x.csv"]


def test_values_are_spelled_as_json_scalars() -> None:
    assert [render_value(v) for v in (True, False, 3, 0.1, "text")] == ["true", "false", "3", "0.1", "text"]
    with pytest.raises(Invalid):
        render_value({"nested": 1})


def test_placeholder_syntax_in_a_value_is_not_expanded_again(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    argv = build_argv(
        spec, {"rate": 1, "label": "{inputs.data}"}, {"data": Path("/in")}, python="/py", app_dir=tmp_path
    )
    assert argv[3] == "{inputs.data}"


def write_app(tmp_path: Path, body: str) -> AppSpec:
    (tmp_path / "probe.py").write_text(body)
    return make_spec(tmp_path, command=["{python}", "{app_dir}/probe.py"], env={"DECLARED": "yes"})


def run(spec: AppSpec, sandbox: Sandbox, timeout: float = 10, stop_after: float | None = None) -> Any:
    async def main() -> Any:
        stop = asyncio.Event()
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, stop.set)
        app_dir = sandbox.root.parent.parent  # the sandbox fixture is tmp_path/work/job1, beside probe.py
        argv = [sys.executable, str(app_dir / "probe.py")]
        return await run_app(argv, sandbox=sandbox, spec=spec, timeout=timeout, stop=stop, driver=LocalDriver())

    return asyncio.run(main())


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path / "work", "job1")
    box.create()
    return box


def test_app_sees_only_a_scrubbed_environment_and_runs_in_its_directory(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    spec = write_app(tmp_path, "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))")
    result = run(spec, sandbox)
    seen = json.loads(sandbox.stdout.read_text())
    assert result.code == 0
    assert "SECRET_TOKEN" not in seen["env"]
    assert seen["env"]["DECLARED"] == "yes"
    assert seen["env"]["HOME"] == str(sandbox.run)
    assert seen["cwd"] == str(sandbox.run)


def test_exit_code_and_stderr_are_captured(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import sys; print('bad input', file=sys.stderr); sys.exit(3)")
    assert run(spec, sandbox).code == 3
    assert sandbox.stderr_tail().strip() == "bad input"


def test_stderr_tail_keeps_only_the_end(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import sys; sys.stderr.write('x' * 10000 + 'END'); sys.exit(1)")
    run(spec, sandbox)
    tail = sandbox.stderr_tail()
    assert tail.endswith("END") and len(tail) == 2000


def test_timeout_kills_the_whole_process_group(tmp_path: Path, sandbox: Sandbox) -> None:
    marker = tmp_path / "grandchild.pid"
    spec = write_app(
        tmp_path,
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    result = run(spec, sandbox, timeout=1.5)
    assert result.timed_out and result.code is None
    assert time.monotonic() - started < 15
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = Path(f"/proc/{grandchild}").exists() and "Z" not in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
    assert not alive


def test_stop_ends_the_app_and_says_so(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import time; print('working', flush=True); time.sleep(60)")
    started = time.monotonic()
    result = run(spec, sandbox, timeout=30, stop_after=1.0)
    assert result.stopped and not result.timed_out and result.code is None
    assert time.monotonic() - started < 10
    assert sandbox.stdout.read_text() == "working\n"


def test_an_app_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    started = time.monotonic()
    result = run(spec, sandbox, timeout=30, stop_after=0.5)
    assert result.stopped
    assert 4 < time.monotonic() - started < 15


def test_memory_limit_applies_to_the_app(tmp_path: Path, sandbox: Sandbox) -> None:
    (tmp_path / "probe.py").write_text("x = bytearray(400 * 2**20)\nprint('allocated')\n")
    spec = make_spec(
        tmp_path,
        command=["{python}", "{app_dir}/probe.py"],
        limits={"memory_mb": 200, "file_size_mb": None, "open_files": None, "cpu_seconds": None},
    )
    result = run(spec, sandbox)
    assert result.code != 0
    assert "MemoryError" in sandbox.stderr_tail()


def test_missing_program_exits_127(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = make_spec(tmp_path, command=["no-such-program-anywhere"])
    result = asyncio.run(
        run_app(
            ["no-such-program-anywhere"],
            sandbox=sandbox,
            spec=spec,
            timeout=10,
            stop=asyncio.Event(),
            driver=LocalDriver(),
        )
    )
    assert result.code == 127
    assert "cannot start no-such-program-anywhere" in sandbox.stderr_tail()


def run_with_disk_limit(spec: AppSpec, sandbox: Sandbox, limit_mb: int) -> Any:
    argv = [sys.executable, str(sandbox.root.parent.parent / "probe.py")]
    return asyncio.run(
        run_app(
            argv,
            sandbox=sandbox,
            spec=spec,
            timeout=30,
            stop=asyncio.Event(),
            driver=LocalDriver(),
            max_disk_mb=limit_mb,
        )
    )


def test_an_app_filling_its_directory_is_stopped(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import os, time; open('fill', 'wb').write(os.urandom(3 * 2**20)); time.sleep(60)")
    started = time.monotonic()
    result = run_with_disk_limit(spec, sandbox, 2)
    assert result.over_disk_mb == 2 and result.code is None and not result.timed_out
    assert time.monotonic() - started < 10


def test_an_app_that_ends_over_its_disk_limit_is_caught(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import os; open(os.environ['TMPDIR'] + '/fill', 'wb').write(os.urandom(3 * 2**20))")
    result = run_with_disk_limit(spec, sandbox, 2)
    assert (result.code, result.over_disk_mb) == (0, 2)


def test_an_app_within_its_disk_limit_is_left_alone(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_app(tmp_path, "import os; open('fill', 'wb').write(os.urandom(2**20))")
    assert run_with_disk_limit(spec, sandbox, 2) == Exit(code=0)
