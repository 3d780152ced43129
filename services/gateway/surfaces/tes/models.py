"""The TES 1.1 messages, field for field as spec/tes-1.1.openapi.yaml names them; unset fields are left out.

A task is read with every field optional but ``executors`` (the read-only ones a client sends
back, such as ``id`` or ``state``, are ignored) and turned into the stored ``TaskSpec``; the
constraints here are those of ``TaskSpec``, so that a task read is one that can be stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models import TaskSpec


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")


class tesFileType(StrEnum):  # the spec's names
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


class tesView(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


class tesInput(_Message):
    name: str | None = None
    description: str | None = None
    url: str | None = None
    path: str
    type: tesFileType | None = None
    content: str | None = None
    streamable: bool | None = None


class tesOutput(_Message):
    name: str | None = None
    description: str | None = None
    url: str
    path: str
    path_prefix: str | None = None
    type: tesFileType | None = None


class tesResources(_Message):
    cpu_cores: int | None = None
    preemptible: bool | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    zones: list[str] | None = None
    backend_parameters: dict[str, str] | None = None
    backend_parameters_strict: bool | None = None


class tesExecutor(_Message):
    image: str
    command: list[str] = Field(min_length=1)
    workdir: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    env: dict[str, str] | None = None
    ignore_error: bool | None = None


class tesExecutorLog(_Message):
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int


class tesOutputFileLog(_Message):
    url: str
    path: str
    size_bytes: str


class tesTaskLog(_Message):
    logs: list[tesExecutorLog]
    metadata: dict[str, str] | None = None
    start_time: str | None = None
    end_time: str | None = None
    outputs: list[tesOutputFileLog]
    system_logs: list[str] | None = None


class tesTask(_Message):
    id: str | None = None
    state: str | None = None
    name: str | None = None
    description: str | None = None
    inputs: list[tesInput] | None = None
    outputs: list[tesOutput] | None = None
    resources: tesResources | None = None
    executors: list[tesExecutor] | None = Field(default=None, min_length=1)
    volumes: list[str] | None = None
    tags: dict[str, str] | None = None
    logs: list[tesTaskLog] | None = None
    creation_time: str | None = None

    def spec(self) -> TaskSpec:
        """The task to store, from what a client may set (never id, state, logs or creation_time)."""
        fields = {"name", "description", "inputs", "outputs", "resources", "executors", "volumes", "tags"}
        return TaskSpec.model_validate(self.model_dump(include=fields, exclude_none=True))


class tesCreateTaskResponse(_Message):
    id: str


class tesListTasksResponse(_Message):
    tasks: list[tesTask]
    next_page_token: str | None = None


class tesServiceType(_Message):
    group: str
    artifact: str
    version: str


class tesServiceInfo(_Message):
    id: str
    name: str
    type: tesServiceType
    description: str | None = None
    organization: dict[str, str]
    documentationUrl: str | None = None
    version: str
    storage: list[str]
    tesResources_backend_parameters: list[str]


def dumped(message: BaseModel) -> dict[str, Any]:
    """The message as JSON, without the fields left unset."""
    return message.model_dump(mode="json", exclude_none=True)
