"""Progress reported through the progress file ($QUERN_PROGRESS_FILE) instead of marker lines."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import UserFactory
from tests.e2e.test_walking_skeleton import wait_for

pytestmark = pytest.mark.e2e


def test_an_app_may_report_progress_through_its_progress_file(make_user: UserFactory, admin: httpx.Client) -> None:
    name = f"progress-file-{uuid.uuid4().hex[:8]}"
    script = (
        "import json, os, time; path = os.environ['QUERN_PROGRESS_FILE']; "
        "open(path, 'w').write(json.dumps(dict(percent=50, step='halfway'))); time.sleep(2.5); "
        "open('done.txt', 'w').write('ok')"
    )
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "Reports progress through its progress file.",
        "command": ["{python}", "-c", script],
        "parameters": {"type": "object", "additionalProperties": False, "properties": {}},
        "inputs": {},
        "outputs": ["done.txt"],
        "timeout": {"default": 60, "max": 60},
        "limits": {"memory_mb": 1024, "cpu_seconds": 60, "file_size_mb": 16, "open_files": 64},
    }
    registered = admin.post("/v1/apps", json=definition)
    assert registered.status_code == 201, registered.text
    user = make_user()
    job = wait_for(user, user.post("/v1/jobs", json={"app": name}).json()["id"])
    assert job["state"] == "SUCCEEDED", job
    assert (job["progress"]["percent"], job["progress"]["step"]) == (50, "halfway")
