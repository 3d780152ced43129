"""``AsyncClient``: the connection to a gateway with one namespace per kind of resource."""

from __future__ import annotations

import httpx

from quern._async.accounts import Keys, Users
from quern._async.apps import Apps
from quern._async.connection import AsyncConnection
from quern._async.datasets import Datasets
from quern._async.files import Files
from quern._async.jobs import Jobs
from quern._async.queues import Queues
from quern._async.webhooks import Webhooks
from quern.models import Cluster, Token, User
from quern.transport import DEFAULT_URL, Retries


class AsyncClient(AsyncConnection):
    """A connection to one quern gateway, authenticated by a token or an API key (``qk_...``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, retries=retries, transport=transport)
        self.files = Files(self)
        self.datasets = Datasets(self)
        self.apps = Apps(self)
        self.jobs = Jobs(self)
        self.queues = Queues(self)
        self.users = Users(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    async def login(self, username: str, password: str) -> Token:
        """Exchange a username and password for a token that every later call sends."""
        token = await self.post(Token, "/v1/auth/login", {"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token.access_token}"
        return token

    async def me(self) -> User:
        """The caller."""
        return await self.get(User, "/v1/me")

    async def cluster(self) -> Cluster:
        """Workers, queue depths and job counts."""
        return await self.get(Cluster, "/v1/cluster")
