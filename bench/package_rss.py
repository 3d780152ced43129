"""Package 1 GiB of outputs with the results worker; report its peak RSS and its throughput beside ``tar czf`` + boto3.

Starts its own stack (free ports, temporary state). The outputs are written to S3 as a finished
job's would be, the job is recorded in Mongo, and ``package_results`` is sent to the results
worker, which streams S3 -> tar -> gzip -> S3. The baseline, measured in the same run on the
same files, is ``tar czf`` of them on local disk plus one boto3 upload of the tarball.
Run with ``just bench`` or ``python -m bench.package_rss [--size-mb N]``. Writes bench/package.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.harness import bench_stack, s3_client
from bench.upload_rss import PeakRss
from devstack.stack import Stack
from shared.broker import Broker
from shared.models import Job, JobState, OutputFile, utcnow
from shared.settings import Settings, load
from shared.store import Stores
from shared.tasks import PACKAGE_RESULTS

RSS_GOAL_MB = 200
THROUGHPUT_GOAL = 0.9
FILES = 8


def make_outputs(directory: Path, size: int) -> dict[str, str]:
    """Half incompressible binary, half CSV text, like a simulation's outputs; returns name -> sha256."""
    directory.mkdir(parents=True)
    noise = os.urandom(2**20)
    rows = "".join(f"{i},{i * 0.001:.6f},{(i * 7919) % 10007 / 3.0:.6f},cell-{i % 977}\n" for i in range(40_000))
    text = rows.encode()[: 2**20]
    sums = {}
    for index in range(FILES):
        binary = index % 2 == 0
        name = f"field_{index}.bin" if binary else f"table_{index}.csv"
        digest = hashlib.sha256()
        with (directory / name).open("wb") as handle:
            for block_index in range(size // FILES // 2**20):
                source = noise if binary else text
                shift = (block_index * 4099 + index) % len(source)
                block = source[shift:] + source[:shift]
                handle.write(block)
                digest.update(block)
        sums[name] = digest.hexdigest()
    return sums


def settings_of(stack: Stack) -> Settings:
    os.environ.update(stack.env())
    return load(Settings)


async def record_job(settings: Settings, job: Job) -> None:
    stores = Stores.connect(settings, appname="quern-bench")
    try:
        await stores.jobs.insert_job(job)
    finally:
        await stores.close()


async def wait_for_archive(settings: Settings, job_id: str, timeout: float) -> Job:
    stores = Stores.connect(settings, appname="quern-bench")
    deadline = time.monotonic() + timeout
    try:
        while True:
            job = await stores.jobs.get_job(job_id)
            if job.archive is not None:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} was not packaged within {timeout} s")
            await asyncio.sleep(0.1)
    finally:
        await stores.close()


def measure(stack: Stack, size_mb: int, work: Path) -> list[dict[str, Any]]:
    """Packaging rows, measured on a running ``stack``."""
    outputs_dir = work / "outputs"
    sums = make_outputs(outputs_dir, size_mb * 2**20)
    size = sum(path.stat().st_size for path in outputs_dir.iterdir())
    settings = settings_of(stack)
    s3 = s3_client(stack)
    job_id = uuid.uuid4().hex[:26]
    outputs = []
    for name, sha256 in sorted(sums.items()):
        key = f"jobs/{job_id}/outputs/{name}"
        s3.upload_file(str(outputs_dir / name), stack.bucket, key)
        content_type = "text/csv" if name.endswith(".csv") else "application/octet-stream"
        file_size = (outputs_dir / name).stat().st_size
        outputs.append(OutputFile(path=name, size=file_size, sha256=sha256, content_type=content_type, key=key))
    now = utcnow()
    job = Job(
        id=job_id,
        owner="bench",
        app="bench",
        app_version="1",
        params={},
        inputs={},
        timeout_seconds=60,
        state=JobState.SUCCEEDED,
        created=now,
        started=now,
        finished=now,
        exit_code=0,
        outputs=outputs,
    )
    asyncio.run(record_job(settings, job))

    # Baseline: the same files through tar czf on local disk, then one boto3 upload of the tarball.
    tarball = work / "baseline.tar.gz"
    started = time.perf_counter()
    subprocess.run(["tar", "czf", str(tarball), "-C", str(outputs_dir), "."], check=True)
    tar_seconds = time.perf_counter() - started
    started = time.perf_counter()
    s3.upload_file(str(tarball), stack.bucket, "baseline/outputs.tar.gz")
    upload_seconds = time.perf_counter() - started
    s3.close()

    results = stack.services()[2]
    pid = results.pid()
    assert pid is not None
    idle_rss = psutil.Process(pid).memory_info().rss
    broker = Broker(settings)
    with PeakRss(pid) as rss:
        started = time.perf_counter()
        broker.send(PACKAGE_RESULTS, job_id)
        packaged = asyncio.run(wait_for_archive(settings, job_id, timeout=1800))
        quern_seconds = time.perf_counter() - started
    broker.close()
    assert packaged.archive is not None
    mib = size / 2**20
    baseline_seconds = tar_seconds + upload_seconds
    ratio = baseline_seconds / quern_seconds
    return [
        {
            "figure": f"package {size_mb} MiB (MiB/s)",
            "quern": round(mib / quern_seconds, 1),
            "baseline": round(mib / baseline_seconds, 1),
            "ratio": round(ratio, 2),
            "goal": f">= {THROUGHPUT_GOAL:g}x",
            "met": ratio >= THROUGHPUT_GOAL,
            "detail": {
                "tar_czf_seconds": round(tar_seconds, 2),
                "boto3_upload_seconds": round(upload_seconds, 2),
                "quern_seconds": round(quern_seconds, 2),
                "archive_bytes": packaged.archive.size,
                "baseline_bytes": tarball.stat().st_size,
            },
        },
        {
            "figure": "results worker peak RSS while packaging (MB)",
            "quern": round(rss.peak / 1e6, 1),
            "baseline": round(idle_rss / 1e6, 1),
            "ratio": round(rss.peak / idle_rss, 2),
            "goal": f"< {RSS_GOAL_MB} MB",
            "met": rss.peak / 1e6 < RSS_GOAL_MB,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quern-bench-") as work, bench_stack(Path(work)) as stack:
        rows = measure(stack, args.size_mb, Path(work))
    print(f"{'figure':46} {'quern':>10} {'baseline':>10} {'ratio':>7}  {'goal':>10}  met")
    for row in rows:
        print(
            f"{row['figure']:46} {row['quern']:>10} {row['baseline']:>10} {row['ratio']:>7}  {row['goal']:>10}  "
            f"{'yes' if row['met'] else 'NO'}"
        )
    print(f"  {json.dumps(rows[0]['detail'])}")
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "rows": rows}
    (Path(__file__).parent / "package.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"bench: goals met {sum(r['met'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
