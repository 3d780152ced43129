"""Hostile parameters reach the app as one verbatim argument each, never a shell; what cannot, is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory, problem
from tests.e2e.test_seed_flows import archive_members
from tests.e2e.test_walking_skeleton import wait_for

pytestmark = pytest.mark.e2e
# The app writes down the arguments it got and where it ran; nothing in it would interpret them.
ECHO = "import json, os, sys; json.dump(dict(argv=sys.argv[1:], cwd=os.getcwd()), open('argv.json', 'w'))"


def script_app(admin: httpx.Client, script: str, *, args: list[str], text_param: bool, outputs: list[str]) -> str:
    """Register ``python -c script ARGS...`` as an app under a fresh name (optionally with a string ``text``)."""
    name = f"script-{uuid.uuid4().hex[:8]}"
    parameters: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    if text_param:
        parameters |= {"required": ["text"], "properties": {"text": {"type": "string"}}}
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "A test script.",
        "command": ["{python}", "-c", script, *args],
        "parameters": parameters,
        "inputs": {},
        "outputs": outputs,
        "timeout": {"default": 60, "max": 60},
        "limits": {"memory_mb": 1024, "cpu_seconds": 60, "file_size_mb": 16, "open_files": 64},
    }
    answer = admin.post("/v1/apps", json=definition)
    assert answer.status_code == 201, answer.text
    return name


def echo_app(admin: httpx.Client) -> str:
    """An app that writes the two arguments it got, ``TEXT`` and ``--flag=TEXT``, to argv.json."""
    args = ["{params.text}", "--flag={params.text}"]
    return script_app(admin, ECHO, args=args, text_param=True, outputs=["argv.json"])


def test_shell_syntax_and_paths_arrive_verbatim_as_one_argument(
    make_user: UserFactory, admin: httpx.Client, tmp_path: Path
) -> None:
    user = make_user()
    app = echo_app(admin)
    canary = tmp_path / "pwned"
    hostile = [
        f"; touch {canary} #",
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"a && touch {canary}",
        "line one\nline two",
        "../../../../etc/passwd",
        "/etc/shadow",
        "*",
        "{params.text}",
        "--help",
        "ünïcödé ✓",
    ]
    batch = user.post("/v1/jobs/batch", json={"jobs": [{"app": app, "params": {"text": text}} for text in hostile]})
    assert batch.status_code == 201, batch.text
    for text, item in zip(hostile, batch.json()["items"], strict=True):
        assert wait_for(user, item["id"])["state"] == "SUCCEEDED"
        seen = json.loads(archive_members(user, item["id"])["outputs/argv.json"])
        assert seen["argv"] == [text, f"--flag={text}"]
        assert seen["cwd"].endswith(f"/{item['id']}/run")  # in the job's own directory
    assert not canary.exists()


def test_what_no_command_line_can_carry_is_refused_before_anything_runs(
    make_user: UserFactory, admin: httpx.Client
) -> None:
    user = make_user()
    app = echo_app(admin)
    cases = {"nul": "before\x00after", "huge": "x" * 1_000_000}
    for why, text in cases.items():
        body = problem(user.post("/v1/jobs", json={"app": app, "params": {"text": text}}), 422)
        assert [error["pointer"] for error in body["errors"]] == ["/params/text"], why
    assert user.get("/v1/jobs").json()["items"] == []
