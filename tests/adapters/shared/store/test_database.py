"""The database under the stores: a server that does not answer is Unavailable."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from pydantic import SecretStr

from shared.errors import Unavailable
from shared.settings import Settings
from shared.store import Stores


def test_unreachable_server_is_unavailable(settings: Settings) -> None:
    dead = settings.model_copy(update={"mongo_url": SecretStr("mongodb://127.0.0.1:9"), "mongo_timeout_seconds": 0.5})

    async def scenario() -> None:
        stores = Stores.connect(dead, appname="quern-tests")
        try:
            with pytest.raises(Unavailable):
                await stores.jobs.get_job("x")
        finally:
            await stores.close()

    asyncio.run(scenario())
    # PyMongo's async client drops the socket of a refused connection without closing it; collect
    # it here, quietly, rather than let a later test's garbage collection report the ResourceWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
