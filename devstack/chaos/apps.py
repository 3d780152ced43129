"""The apps the chaos scenarios run, registered under fresh names through the API as an admin would."""

from __future__ import annotations

import io
import tarfile
import time
import uuid

import httpx

SLEEPER = "import sys, time; time.sleep(float(sys.argv[1])); open('out.txt', 'w').write('slept ' + sys.argv[1])"
# What it writes tells which runner's attempt made it: the work directories differ.
WHERE = "import os, time; time.sleep(3); open('out.txt', 'w').write(os.getcwd())"


def register_script(api: httpx.Client, script: str, *, seconds_param: bool) -> str:
    """Register ``python -c script [seconds]`` writing out.txt; its name."""
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    properties = {"seconds": {"type": "number", "minimum": 0, "maximum": 600, "default": 1}} if seconds_param else {}
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "A chaos scenario's app.",
        "command": ["{python}", "-c", script, *(["{params.seconds}"] if seconds_param else [])],
        "parameters": {"type": "object", "additionalProperties": False, "properties": properties},
        "inputs": {},
        "outputs": ["out.txt"],
        "timeout": {"default": 300, "max": 600},
    }
    api.post("/v1/apps", json=definition).raise_for_status()
    return name


def archived_output(api: httpx.Client, job_id: str, path: str, *, timeout: float = 120) -> bytes | None:
    """The bytes of ``outputs/<path>`` in the job's archive, as a client downloads it; None if there is none."""
    deadline = time.monotonic() + timeout
    while (link := api.get(f"/v1/jobs/{job_id}/archive")).status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.5)
    if link.status_code != 200:
        return None
    download = httpx.get(link.json()["url"], timeout=60)
    download.raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
        member = tar.extractfile(f"{job_id}/outputs/{path}")
        return None if member is None else member.read()
