"""Hostile parameters reach the app as one verbatim argument each, never through a shell."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.helpers.clients import UserFactory, archive_members, echo_app, wait_for

# Re-exported until tests/quern imports it from tests.helpers.clients (it is outside this change).


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
