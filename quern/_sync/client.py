# Generated from quern/_async/client.py by scripts/unasync.py: edit that file, then run `just fmt`.
"""``Client``: the connection to a gateway with one namespace per kind of resource."""

from __future__ import annotations

from functools import cached_property

from quern._sync.accounts import Keys, Users
from quern._sync.apps import Apps
from quern._sync.connection import Connection
from quern._sync.datasets import Datasets
from quern._sync.files import Files
from quern._sync.jobs import Jobs
from quern._sync.queues import Queues
from quern._sync.webhooks import Webhooks
from quern.models import Cluster, Token, User


class Client(Connection):
    """A connection to one quern gateway, authenticated by a token or an API key (``qk_...``)."""

    # Each namespace is made on first use and kept: ``client.files`` is always the same ``Files``.
    files = cached_property(Files)
    datasets = cached_property(Datasets)
    apps = cached_property(Apps)
    jobs = cached_property(Jobs)
    queues = cached_property(Queues)
    users = cached_property(Users)
    keys = cached_property(Keys)
    webhooks = cached_property(Webhooks)

    def login(self, username: str, password: str) -> Token:
        """Exchange a username and password for a token that every later call sends."""
        token = self.post(Token, "/v1/auth/login", {"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token.access_token}"
        return token

    def me(self) -> User:
        """The caller."""
        return self.get(User, "/v1/me")

    def change_password(self, current: str, new: str) -> Token:
        """Change the caller's password: every earlier token ends, and the fresh one answered is sent from now on."""
        body = {"current_password": current, "new_password": new}
        token = self.post(Token, "/v1/me/password", body)
        self.http.headers["Authorization"] = f"Bearer {token.access_token}"
        return token

    def log_out_everywhere(self) -> None:
        """End every login token and UI session of the caller's, this client's token too (API keys go on)."""
        self.request("POST", "/v1/me/logout-all")

    def cluster(self) -> Cluster:
        """Workers, queue depths and job counts."""
        return self.get(Cluster, "/v1/cluster")
