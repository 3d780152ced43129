"""Upload 1 GiB through the gateway; report its throughput beside a direct boto3 upload and its peak RSS (raw and form).

Starts its own stack (free ports, temporary state) so a development stack is not disturbed.
Run with ``just bench`` or ``python -m bench.upload_rss [--size-mb N]``. Writes bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import bench_stack, s3_client
from devstack.stack import Stack

RSS_GOAL_MB = 150
THROUGHPUT_GOAL = 0.8


class PeakRss:
    """Samples a process's resident set size in the background and keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_file(path: Path, size: int) -> None:
    block = os.urandom(2**20)
    with path.open("wb") as handle:
        for i in range(size // 2**20):
            handle.write(block[i % 7 :] + block[: i % 7])  # distinct blocks, cheap to make


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(2**20):
            yield block


def login(stack: Stack) -> str:
    """A token for the stack's admin (uploads need credentials)."""
    body = {"username": stack.admin_username, "password": stack.admin_password}
    answer = httpx.post(f"{stack.gateway_url}/v1/auth/login", json=body, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


FORM_TYPE = "multipart/form-data; boundary=quern-bench-boundary"


def form(path: Path) -> Iterator[bytes]:
    """``path`` as the ``file`` part of a form, streamed."""
    yield b'--quern-bench-boundary\r\nContent-Disposition: form-data; name="file"; filename="upload.bin"\r\n\r\n'
    yield from chunks(path)
    yield b"\r\n--quern-bench-boundary--\r\n"


def measure(stack: Stack, size_mb: int, work: Path) -> list[dict[str, Any]]:
    """Upload rows, measured on a running ``stack``."""
    data = work / "upload.bin"
    make_file(data, size_mb * 2**20)
    size = data.stat().st_size
    try:
        gateway = stack.services()[0]
        pid = gateway.pid()
        assert pid is not None
        s3 = s3_client(stack)
        started = time.perf_counter()
        s3.upload_file(str(data), stack.bucket, "baseline/upload.bin")
        baseline = time.perf_counter() - started
        s3.delete_object(Bucket=stack.bucket, Key="baseline/upload.bin")
        s3.close()

        idle_rss = psutil.Process(pid).memory_info().rss
        headers = {"Authorization": f"Bearer {login(stack)}"}
        with PeakRss(pid) as rss, httpx.Client(base_url=stack.gateway_url, timeout=600, headers=headers) as client:
            started = time.perf_counter()
            response = client.post("/v1/files", params={"name": "upload.bin"}, content=chunks(data))
            through_gateway = time.perf_counter() - started
        response.raise_for_status()
        assert response.json()["size"] == size

        with PeakRss(pid) as form_rss, httpx.Client(base_url=stack.gateway_url, timeout=600, headers=headers) as client:
            response = client.post("/v1/files", content=form(data), headers={"content-type": FORM_TYPE})
        response.raise_for_status()
        assert response.json()["size"] == size
    finally:
        data.unlink()
    mib_s = size / 2**20
    ratio = baseline / through_gateway
    return [
        {
            "figure": f"upload {size_mb} MiB (MiB/s)",
            "quern": round(mib_s / through_gateway, 1),
            "baseline": round(mib_s / baseline, 1),
            "ratio": round(ratio, 2),
            "goal": f">= {THROUGHPUT_GOAL}x",
            "met": ratio >= THROUGHPUT_GOAL,
        },
        {
            "figure": "gateway peak RSS during upload (MB)",
            "quern": round(rss.peak / 1e6, 1),
            "baseline": round(idle_rss / 1e6, 1),
            "ratio": round(rss.peak / idle_rss, 2),
            "goal": f"< {RSS_GOAL_MB} MB",
            "met": rss.peak / 1e6 < RSS_GOAL_MB,
        },
        {
            "figure": "gateway peak RSS during form upload (MB)",
            "quern": round(form_rss.peak / 1e6, 1),
            "baseline": round(idle_rss / 1e6, 1),
            "ratio": round(form_rss.peak / idle_rss, 2),
            "goal": f"< {RSS_GOAL_MB} MB",
            "met": form_rss.peak / 1e6 < RSS_GOAL_MB,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quern-bench-") as work, bench_stack(Path(work)) as stack:
        rows = measure(stack, args.size_mb, Path(work))
    print(f"{'figure':40} {'quern':>10} {'baseline':>10} {'ratio':>7}  {'goal':>10}  met")
    for row in rows:
        print(
            f"{row['figure']:40} {row['quern']:>10} {row['baseline']:>10} {row['ratio']:>7}  {row['goal']:>10}  "
            f"{'yes' if row['met'] else 'NO'}"
        )
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "rows": rows}
    (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"bench: goals met {sum(r['met'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
