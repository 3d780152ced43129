"""Datasets: checked bundles stored one S3 object per member, and the job inputs that read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models.records import Record


class DatasetMember(Record):
    """One file of a dataset, stored at ``datasets/<dataset id>/<path>``."""

    path: str
    size: int
    sha256: str


class Dataset(Record):
    """The checked contents of an uploaded bundle (zip, tar, tar.gz), one S3 object per member."""

    id: str
    owner: str
    name: str
    description: str = ""
    tags: list[str] = Field(default=[])
    kind: str
    members: list[DatasetMember]
    metadata: dict[str, Any] | None = Field(
        default=None, description="the bundle's top-level metadata.txt (beside a data/ directory), parsed"
    )
    source_file: str
    created: datetime
    updated: datetime

    @property
    def prefix(self) -> str:
        """Where the members are stored in S3."""
        return dataset_prefix(self.id)

    @property
    def size(self) -> int:
        """The members' bytes in all."""
        return sum(member.size for member in self.members)


def dataset_prefix(dataset_id: str) -> str:
    """The S3 prefix of a dataset's members."""
    return f"datasets/{dataset_id}/"


class DatasetInput(BaseModel):
    """A job input taken from a dataset: the whole dataset, staged as a directory, or one member of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dataset: str = Field(min_length=1, max_length=64)
    path: str | None = Field(default=None, min_length=1, max_length=1024)


InputValue = str | DatasetInput
