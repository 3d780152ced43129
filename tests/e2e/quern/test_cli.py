"""The ``quern`` CLI as a user runs it: a separate process against the real stack."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from devstack.processes import venv_bin
from devstack.stack import Stack
from tests.helpers.clients import UserFactory, script_app, upload, wait_for

PROJECT = Path(__file__).resolve().parents[3]
QUERN = [venv_bin("quern")]  # the console script of this interpreter's environment, never one found on PATH


@pytest.fixture
def user(make_user: UserFactory) -> httpx.Client:
    return make_user()


@pytest.fixture
def cli_env(stack: Stack, user: httpx.Client, tmp_path: Path) -> dict[str, str]:
    """The environment of a user's shell: the gateway, their token, a config file of their own."""
    token = user.headers["Authorization"].removeprefix("Bearer ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERN_")}
    return env | {"QUERN_URL": stack.gateway_url, "QUERN_TOKEN": token, "QUERN_CONFIG": str(tmp_path / "config.json")}


def quern(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUERN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_outputs_match_manifest(results: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((results / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert sha256(results / entry["path"]) == entry["sha256"], entry
    return manifest


@pytest.mark.parametrize(
    ("app", "args", "output"),
    [
        ("flood", ["-p", "rain_mm=80", "-p", "steps=30", "-i", "elevation=@apps/flood/example/valley.csv"],
         "depth.csv"),
        ("linfit", ["-p", "x=temperature_c", "-p", "y=conductivity_us_cm", "-p", "degree=2",
                    "-i", "table=@apps/linfit/example/river_samples.csv"], "fit.json"),
    ],
)  # fmt: skip
def test_run_with_wait_and_download_leaves_the_outputs_on_disk(
    cli_env: dict[str, str], tmp_path: Path, app: str, args: list[str], output: str
) -> None:
    result = subprocess.run(
        [*QUERN, "run", app, *args, "--wait", "--download", str(tmp_path / "out")],
        env=cli_env, capture_output=True, text=True, timeout=120, check=False, cwd=PROJECT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (results,) = (tmp_path / "out").iterdir()
    assert "SUCCEEDED" in result.stderr and results.name in result.stderr
    manifest = assert_outputs_match_manifest(results)
    assert f"outputs/{output}" in {entry["path"] for entry in manifest["files"]}
    assert (results / "logs" / "stdout.txt").exists()


def test_run_of_tabulate_on_a_dataset_member(cli_env: dict[str, str], tmp_path: Path) -> None:
    bundle = tmp_path / "model.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("model/run.tcf", "Read CSV == data/flows.csv\n")
        archive.writestr("model/data/flows.csv", "t,q\n0,1.5\n1,2.5\n")
    dataset = as_json(quern(cli_env, "--json", "datasets", "create", str(bundle), "--name", "estuary"))
    assert dataset["member_count"] == 2
    listed = as_json(quern(cli_env, "--json", "datasets", "ls"))
    assert [item["id"] for item in listed] == [dataset["id"]]
    out = tmp_path / "out"
    control = f"control=dataset:{dataset['id']}:model/run.tcf"
    result = quern(cli_env, "--json", "run", "tabulate", "-i", control, "--download", str(out))
    job = as_json(result)
    assert job["state"] == "SUCCEEDED"
    summary = json.loads((out / job["id"] / "outputs" / "summary.json").read_text())
    assert "q" in json.dumps(summary)


def test_a_failing_app_exits_with_the_failed_job_code(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not a grid\n")
    result = quern(cli_env, "run", "flood", "-i", f"elevation=@{bad}", "--wait", "--no-logs")
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stderr and "error:" in result.stderr


def test_usage_service_and_connection_errors_have_their_own_codes(cli_env: dict[str, str]) -> None:
    usage = quern(cli_env, "run", "flood", "-p", "no-equals-sign")
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr
    missing = quern(cli_env, "jobs", "show", "01jzzzzzzzzzzzzzzzzzzzzzzz")
    assert missing.returncode == 3 and "404" in missing.stderr
    unreachable = quern(cli_env | {"QUERN_URL": "http://127.0.0.1:9", "QUERN_RETRIES": "2"}, "jobs", "ls")
    assert unreachable.returncode == 4 and "cannot reach" in unreachable.stderr
    assert "trying again" in unreachable.stderr  # one retry, said on stderr


def test_jobs_logs_follow_streams_lines_while_the_job_runs(
    cli_env: dict[str, str], admin: httpx.Client, user: httpx.Client
) -> None:
    chatty = (
        "import time\nfor n in range(8):\n    print('line', n, flush=True)\n    time.sleep(0.5)\nopen('done', 'w')\n"
    )
    app = script_app(admin, chatty, args=[], text_param=False, outputs=["done"])
    job = as_json(quern(cli_env, "--json", "run", app))
    with subprocess.Popen(
        [*QUERN, "jobs", "logs", "-f", job["id"]], env=cli_env, stdout=subprocess.PIPE, text=True
    ) as follower:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        state_then = user.get(f"/v1/jobs/{job['id']}").json()["state"]
        rest = follower.stdout.read()
        assert follower.wait(timeout=60) == 0
    assert first.strip() == "line 0" and state_then == "RUNNING"
    assert [line for line in rest.splitlines()] == [f"line {n}" for n in range(1, 8)]
    assert wait_for(user, job["id"])["state"] == "SUCCEEDED"


def test_a_200_mb_upload_renders_a_progress_bar_in_a_terminal_and_keeps_its_sha256(
    cli_env: dict[str, str], tmp_path: Path, user: httpx.Client
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        for _ in range(200):
            handle.write(os.urandom(10**6))
    child = pexpect.spawn(
        QUERN[0], ["files", "upload", str(big)],
        env=cli_env | {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}, encoding="utf-8", timeout=180,
        dimensions=(40, 120),
    )  # fmt: skip
    child.logfile_read = screen = io.StringIO()
    child.expect("upload big.bin")
    child.expect(r"\d+\.\d+/190\.7 MiB")  # the bar redraws with the bytes moved so far
    child.expect("100%")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    shown = screen.getvalue()
    assert "\r" in shown or "\x1b[" in shown, "the bar was not redrawn in place"
    assert "ETA" in shown and "MB/s" in shown and "190.7/190.7 MiB" in shown
    uploaded = next(item for item in user.get("/v1/files").json()["items"] if item["name"] == "big.bin")
    assert uploaded["sha256"] == sha256(big) and uploaded["size"] == 200 * 10**6


def shell_without_quern_settings(tmp_path: Path) -> dict[str, str]:
    """A shell's environment with no QUERN_ variable but a config file of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERN_")}
    return env | {"QUERN_CONFIG": str(tmp_path / "quern" / "config.json")}


def placed(where: str, options: list[str], command: list[str]) -> list[str]:
    """The command line with ``options`` before the command or after it."""
    return [*options, *command] if where == "before" else [*command, *options]


@pytest.mark.parametrize("where", ["before", "after"])
def test_login_stores_the_token_for_the_user_alone(
    stack: Stack, admin: httpx.Client, tmp_path: Path, where: str
) -> None:
    username = f"cli-login-{where}"
    answer = admin.post("/v1/users", json={"username": username, "password": "a-long-password-1"})
    assert answer.status_code == 201, answer.text
    env = shell_without_quern_settings(tmp_path)
    login = ["login", "-u", username, "--password", "a-long-password-1"]
    logged = quern(env, *placed(where, ["--url", stack.gateway_url], login))  # after: the README's first command
    assert logged.returncode == 0, logged.stderr
    config = tmp_path / "quern" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["url"] == stack.gateway_url
    me = as_json(quern(env, "--json", "whoami"))  # the stored URL and token, nothing in the environment
    assert me["username"] == username
    assert quern(env, "logout").returncode == 0
    assert quern(env, "whoami").returncode == 3


def test_passwd_renews_the_stored_token_and_logout_everywhere_ends_every_token(
    stack: Stack, admin: httpx.Client, tmp_path: Path
) -> None:
    answer = admin.post("/v1/users", json={"username": "cli-passwd", "password": "the-first-password"})
    assert answer.status_code == 201, answer.text
    env = shell_without_quern_settings(tmp_path)
    config = tmp_path / "quern" / "config.json"
    login = ["login", "--url", stack.gateway_url, "-u", "cli-passwd", "--password"]
    assert quern(env, *login, "the-first-password").returncode == 0
    first = json.loads(config.read_text())["token"]
    changed = quern(env, "passwd", "--current", "the-first-password", "--new", "the-second-password")
    assert changed.returncode == 0, changed.stderr
    assert "renewed" in changed.stdout
    assert as_json(quern(env, "--json", "whoami"))["username"] == "cli-passwd"  # the renewed stored token
    assert quern(env | {"QUERN_TOKEN": first}, "whoami").returncode == 3
    assert quern(env, *login, "the-first-password").returncode == 3
    assert quern(env, *login, "the-second-password").returncode == 0
    second = json.loads(config.read_text())["token"]
    assert quern(env, "logout", "--everywhere").returncode == 0
    assert quern(env | {"QUERN_TOKEN": second}, "whoami").returncode == 3


def test_an_admin_sets_a_users_password(stack: Stack, admin: httpx.Client, user: httpx.Client, tmp_path: Path) -> None:
    user_id = user.get("/v1/me").json()["id"]
    env = shell_without_quern_settings(tmp_path) | {
        "QUERN_URL": stack.gateway_url,
        "QUERN_TOKEN": admin.headers["Authorization"].split()[1],
    }
    reset = quern(env, "--json", "admin", "users", "set-password", user_id, "--password", "a-password-set-by-admin")
    assert as_json(reset)["id"] == user_id
    assert user.get("/v1/me").status_code == 401
    username = as_json(reset)["username"]
    relogin = httpx.post(
        f"{stack.gateway_url}/v1/auth/login", json={"username": username, "password": "a-password-set-by-admin"}
    )
    assert relogin.status_code == 200, relogin.text


@pytest.mark.parametrize("where", ["before", "after"])
def test_url_is_taken_before_or_after_the_command(stack: Stack, user: httpx.Client, tmp_path: Path, where: str) -> None:
    env = shell_without_quern_settings(tmp_path) | {"QUERN_TOKEN": user.headers["Authorization"].split()[1]}
    shown = quern(env, *placed(where, ["--url", stack.gateway_url], ["whoami"]))
    assert shown.returncode == 0, shown.stderr
    assert user.get("/v1/me").json()["username"] in shown.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_is_taken_before_or_after_the_command(cli_env: dict[str, str], user: httpx.Client, where: str) -> None:
    me = as_json(quern(cli_env, *placed(where, ["--json"], ["whoami"])))
    assert me["username"] == user.get("/v1/me").json()["username"]


def test_whoami_prints_usage_against_each_quota(cli_env: dict[str, str], user: httpx.Client) -> None:
    shown = quern(cli_env, "whoami")
    assert shown.returncode == 0, shown.stderr
    for quota in ("queued_jobs", "stored_bytes", "pending_uploads", "event_streams", "batch_jobs"):
        assert quota in shown.stdout
    usage = as_json(quern(cli_env, "--json", "whoami"))["usage"]
    assert usage["queued_jobs"]["quota"] and usage["batch_jobs"]["used"] is None


@pytest.mark.parametrize("where", ["before", "after", "after overriding QUERN_RETRIES"])
def test_retries_are_taken_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    env = shell_without_quern_settings(tmp_path) | {"QUERN_URL": "http://127.0.0.1:9"}  # nothing listens there
    if where.endswith("QUERN_RETRIES"):
        env["QUERN_RETRIES"] = "5"
    failed = quern(env, *placed(where.split()[0], ["--retries", "2"], ["jobs", "ls"]))
    assert failed.returncode == 4, failed.stderr
    assert failed.stderr.count("trying again") == 1  # two attempts in all


def test_files_and_jobs_listings_as_json(cli_env: dict[str, str], user: httpx.Client, tmp_path: Path) -> None:
    grid = upload(user, "valley.csv", (PROJECT / "apps/flood/example/valley.csv").read_bytes())
    files = as_json(quern(cli_env, "--json", "files", "ls"))
    assert [item["id"] for item in files] == [grid["id"]]
    saved = as_json(quern(cli_env, "--json", "files", "get", grid["id"], str(tmp_path)))
    assert sha256(Path(saved["path"])) == grid["sha256"]
    job = as_json(quern(cli_env, "--json", "run", "flood", "-p", "steps=2", "-i", f"elevation={grid['id']}", "-w"))
    listed = as_json(quern(cli_env, "jobs", "ls", "--state", "SUCCEEDED", "--json"))  # --json after the command too
    assert [item["id"] for item in listed] == [job["id"]]
    logs = quern(cli_env, "jobs", "logs", job["id"])
    assert logs.returncode == 0 and "flooded" in logs.stdout.splitlines()[-1]
    assert quern(cli_env, "jobs", "rm", job["id"]).returncode == 0
    assert quern(cli_env, "jobs", "show", job["id"]).returncode == 3


def test_shell_completion_completes_commands(cli_env: dict[str, str]) -> None:
    script = quern(cli_env, "completion", "bash")
    assert script.returncode == 0 and "_QUERN_COMPLETE" in script.stdout
    env = cli_env | {"_QUERN_COMPLETE": "bash_complete", "COMP_WORDS": "quern jo", "COMP_CWORD": "1"}
    completed = subprocess.run(QUERN, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert "plain,jobs" in completed.stdout.splitlines()


def test_help_names_every_command(cli_env: dict[str, str]) -> None:
    shown = quern(cli_env, "--help").stdout
    for command in ("login", "run", "jobs", "files", "datasets", "apps", "queues", "cluster", "admin"):
        assert command in shown


def test_admin_apps_register_adds_an_app_then_a_new_version(
    stack: Stack, admin: httpx.Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    definition = json.loads((PROJECT / "apps/linfit/app.json").read_text())
    name = f"linfit-{os.urandom(3).hex()}"
    definition |= {
        "name": name,
        "command": ["{python}", str(PROJECT / "apps/linfit/linfit.py"), *definition["command"][2:]],
    }
    path = tmp_path / "app.json"
    env = cli_env | {"QUERN_TOKEN": admin.headers["Authorization"].removeprefix("Bearer ")}
    for version in ("1.0.0", "1.1.0"):
        path.write_text(json.dumps(definition | {"version": version}))
        registered = as_json(quern(env, "--json", "admin", "apps", "register", str(path)))
        assert registered == {"name": name, "version": version}
    assert as_json(quern(env, "--json", "apps", "describe", name))["version"] == "1.1.0"
