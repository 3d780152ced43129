"""A load generator in a process of its own: ``python -m bench.load URL SECONDS CONCURRENCY [TOKEN]``.

Keeps ``CONCURRENCY`` GET requests of ``URL`` in flight for ``SECONDS`` (bounded in time and
count, on 127.0.0.1 only) and prints one JSON line: requests done, failures, seconds taken.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

MAX_REQUESTS = 1_000_000


async def hammer(url: str, seconds: float, concurrency: int, token: str | None) -> dict[str, float]:
    """Requests per second that ``url`` answered 200 under ``concurrency`` clients."""
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit("bench.load only targets 127.0.0.1")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done = failed = 0
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def one_client() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline and done + failed < MAX_REQUESTS:
                answer = await client.get(url)
                if answer.status_code == 200:
                    done += 1
                else:
                    failed += 1

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        took = time.perf_counter() - started
    return {"requests": done, "failed": failed, "seconds": took}


if __name__ == "__main__":
    url, seconds, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    token = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(asyncio.run(hammer(url, seconds, concurrency, token))))
