"""Who the CLI talks to and as whom: the gateway URL, the stored token, and the exit codes.

``quern login`` stores the URL and a token in ``<config dir>/quern/config.json`` (0600, in a
0700 directory); ``QUERN_URL`` and ``QUERN_TOKEN`` (a login token or an API key) take precedence
over the file, and ``--url`` over both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from quern.client import Client
from quern.transport import DEFAULT_URL, Retries

EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job ran (or was meant to) and did not succeed
EXIT_USAGE = 2  # click's own code for a bad command line
EXIT_SERVICE = 3  # the service refused or failed the request
EXIT_UNREACHABLE = 4  # the service could not be reached
EXIT_LOCAL = 5  # a local file could not be read or written (a full disk, a missing directory)
EXIT_INTERRUPTED = 130


def config_path() -> Path:
    """Where ``quern login`` keeps the URL and token (``QUERN_CONFIG`` overrides it)."""
    override = os.environ.get("QUERN_CONFIG")
    return Path(override) if override else Path(click.get_app_dir("quern")) / "config.json"


def load_config() -> dict[str, Any]:
    """The stored configuration, or an empty one."""
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(data: dict[str, Any]) -> Path:
    """Write the configuration readable by the user alone (created 0600, never world-readable for a moment)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(scratch, 0o600)  # an older file of that name may have had wider permissions
    os.replace(scratch, path)
    return path


@dataclass
class Session:
    """What every command gets: where the service is, the token, how to print, and a lazily made client."""

    url: str
    token: str | None
    as_json: bool
    retries: Retries = field(default_factory=Retries)
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    errors: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    _client: Client | None = None

    @classmethod
    def build(cls, *, url: str | None, as_json: bool, retries: Retries | None = None) -> Session:
        """A session for ``url`` (see ``point_at``)."""
        session = cls(url=DEFAULT_URL, token=None, as_json=as_json, retries=retries or Retries())
        session.point_at(url)
        return session

    def point_at(self, url: str | None) -> None:
        """Settle the URL and token: ``--url``, then the environment, then ``quern login``'s file."""
        stored = load_config()
        chosen = (url or os.environ.get("QUERN_URL") or stored.get("url") or DEFAULT_URL).rstrip("/")
        self.url = chosen
        self.token = os.environ.get("QUERN_TOKEN") or (stored.get("token") if stored.get("url") == chosen else None)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, token=self.token, retries=self.retries)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def say(self, text: str) -> None:
        """A human line on stderr (so that ``--json`` output on stdout stays parseable)."""
        self.errors.print(text)


pass_session = click.make_pass_decorator(Session)
