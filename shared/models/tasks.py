"""GA4GH TES tasks as quern keeps them: a job whose ``task`` holds the executors, inputs and outputs to run.

A TES task is an ordinary quern job (it is listed, canceled, followed and packaged like any
other) with the pseudo-app ``TASK_APP``. The gateway's TES surface turns a ``tesTask`` into a
``TaskSpec``, already checked against the ``TaskPolicy``; the runner stages its inputs, runs its
executors in order, each in a container of its own, and records an ``ExecutorLog`` as each
starts and ends, and an ``OutputFileLog`` for each output file it delivered.

The task is stored as JSON text (see ``Job``): TES maps (``env``, ``tags``,
``backend_parameters``) have user-chosen keys, which may hold characters that Mongo field names
cannot. Its tags are stored a second time as ``TaskTag`` pairs, which a query can match.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TASK_APP = "ga4gh-tes"  # the app name of every TES task's job
TASK_APP_VERSION = "1.1"

FileType = Literal["FILE", "DIRECTORY"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskInput(_Part):
    """An input to stage at ``path`` in every executor's container: from ``url``, or inline ``content``."""

    name: str | None = None
    description: str | None = None
    url: str | None = Field(
        default=None, description="s3://, http(s)://, quern://files/ID, quern://datasets/ID[/member]"
    )
    path: str = Field(description="absolute path inside the containers")
    type: FileType = "FILE"
    content: str | None = None
    streamable: bool | None = None


class TaskOutput(_Part):
    """An output to deliver after the executors ran: to ``s3://`` or kept in quern (``quern://outputs/NAME``)."""

    name: str | None = None
    description: str | None = None
    url: str
    path: str = Field(description="absolute path inside the containers; may hold wildcards with path_prefix")
    path_prefix: str | None = None
    type: FileType = "FILE"


class TaskExecutor(_Part):
    """One command in one container image; executors run in order, sharing the inputs, volumes and outputs."""

    image: str
    command: list[str] = Field(min_length=1)
    workdir: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    env: dict[str, str] = {}
    ignore_error: bool = False


class TaskResources(_Part):
    """What the task asked for: cores, memory and disk become limits; the rest is recorded."""

    cpu_cores: int | None = None
    preemptible: bool | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    zones: list[str] = []
    backend_parameters: dict[str, str] = {}
    backend_parameters_strict: bool = False


class TaskSpec(_Part):
    """A TES task as submitted (and checked): what to stage, what to run, what to deliver."""

    name: str | None = None
    description: str | None = None
    inputs: list[TaskInput] = []
    outputs: list[TaskOutput] = []
    resources: TaskResources | None = None
    executors: list[TaskExecutor] = Field(min_length=1)
    volumes: list[str] = []
    tags: dict[str, str] = {}


class TaskTag(_Part):
    """One of a task's tags, stored so that ``tag_key``/``tag_value`` filters are one query."""

    key: str
    value: str


class ExecutorLog(_Part):
    """One executor's run: when it started and ended, its exit code, and the ends of what it printed."""

    start: datetime
    end: datetime | None = None
    exit_code: int | None = None
    stdout: str = Field(default="", description="the end of its stdout (bounded); the whole log is downloadable")
    stderr: str = Field(default="", description="the end of its stderr (bounded)")


class OutputFileLog(_Part):
    """One file an output delivered: where it went, its path in the containers, its size."""

    url: str
    path: str
    size_bytes: int


class TaskPolicy(BaseModel):
    """What an admin allows TES tasks: images (glob patterns), the images that get a network, and S3 buckets.

    An empty list allows nothing: a fresh production deployment runs no TES image until told which.
    """

    model_config = ConfigDict(frozen=True)
    images: tuple[str, ...] = ()
    network_images: tuple[str, ...] = ()
    s3_buckets: tuple[str, ...] = ()

    def allows_image(self, image: str) -> bool:
        """Whether ``image`` matches one of the allowed patterns."""
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.images)

    def networked(self, image: str) -> bool:
        """Whether a container of ``image`` may reach the network."""
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.network_images)

    def allows_bucket(self, bucket: str) -> bool:
        """Whether ``s3://bucket/...`` may be read from or written to."""
        return any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.s3_buckets)
