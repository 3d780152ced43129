"""The blocking SDK: ``Client(url, token=...)`` and one namespace per kind of resource.

    with Client("https://quern.example.org", token=os.environ["QUERN_TOKEN"]) as quern:
        grid = quern.files.upload("valley.csv")
        job = quern.jobs.submit("flood", params={"rain_mm": 80}, inputs={"elevation": grid.id})
        job = quern.jobs.wait(job.id)
        quern.jobs.download_archive(job.id, "results/")

Lists are iterators that fetch the next page as they go. Every call retries on 429/503 and on
connection errors (see ``quern.transport``); errors are ``quern.errors.ApiError`` subclasses, one
per kind of problem, carrying the problem document's fields. ``quern.aio.AsyncClient`` is the
same API for asyncio; this one is generated from it (``quern._sync``, by scripts/unasync.py).
"""

from __future__ import annotations

from quern._sync.accounts import Keys, Users
from quern._sync.apps import Apps
from quern._sync.client import Client
from quern._sync.datasets import Datasets
from quern._sync.files import Files
from quern._sync.jobs import Jobs
from quern._sync.queues import Queues
from quern._sync.webhooks import Webhooks
from quern.transport import Retries

__all__ = ["Apps", "Client", "Datasets", "Files", "Jobs", "Keys", "Queues", "Retries", "Users", "Webhooks"]
