"""The asyncio SDK: ``AsyncClient(url, token=...)``, the same API as ``quern.client.Client``, awaited.

    async with AsyncClient("https://quern.example.org", token=os.environ["QUERN_TOKEN"]) as quern:
        grid = await quern.files.upload("valley.csv")
        job = await quern.jobs.submit("flood", params={"rain_mm": 80}, inputs={"elevation": grid.id})
        job = await quern.jobs.wait(job.id)
        await quern.jobs.download_archive(job.id, "results/")

Every method is the blocking client's, awaited; lists are async iterators (``async for``).
Requests to the gateway are sent on the event loop. Reading files, hashing them and the
presigned transfers to and from S3 run in worker threads; progress callbacks are called on the
event loop all the same, so they may touch loop-bound state. ``wait(timeout=)`` cancels
whatever it is awaiting when the time is up. The source of both SDKs is ``quern._async``.
"""

from __future__ import annotations

from quern._async.accounts import Keys, Users
from quern._async.apps import Apps
from quern._async.client import AsyncClient
from quern._async.datasets import Datasets
from quern._async.files import Files
from quern._async.jobs import Jobs
from quern._async.queues import Queues
from quern._async.webhooks import Webhooks
from quern.transport import Retries

__all__ = ["Apps", "AsyncClient", "Datasets", "Files", "Jobs", "Keys", "Queues", "Retries", "Users", "Webhooks"]
