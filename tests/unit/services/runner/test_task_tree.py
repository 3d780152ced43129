"""A TES task's mounts: writable directories outermost, inputs read-only outside them, nothing mounted twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runner.task_tree import Mount, host_path, mounts
from shared.errors import Invalid
from shared.models.tasks import TaskSpec


def task_of(**fields: object) -> TaskSpec:
    return TaskSpec.model_validate({"executors": [{"image": "i", "command": ["true"]}], **fields})


def test_inputs_inside_a_writable_directory_are_not_mounted_again() -> None:
    task = task_of(
        volumes=["/shared"],
        inputs=[{"path": "/shared/in.txt", "content": "x"}, {"path": "/data/ref.fa", "content": "y"}],
        outputs=[
            {"path": "/out/a.txt", "url": "quern://outputs/a.txt"},
            {"path": "/out/deep/b.txt", "url": "quern://outputs/b.txt"},
        ],
        executors=[{"image": "i", "command": ["true"], "stdout": "/logs/out.txt"}],
    )
    assert mounts(task) == [
        Mount("/logs", True),
        Mount("/out", True),
        Mount("/shared", True),
        Mount("/data/ref.fa", False),
    ]


def test_a_wildcard_output_mounts_its_prefix_and_a_directory_output_itself() -> None:
    task = task_of(
        outputs=[
            {"path": "/work/*.vcf", "path_prefix": "/work", "url": "s3://b/vcf/"},
            {"path": "/results", "type": "DIRECTORY", "url": "s3://b/results/"},
        ]
    )
    assert mounts(task) == [Mount("/results", True), Mount("/work", True)]


@pytest.mark.parametrize("path", ["relative.txt", "/a/../../etc/passwd", "/a,b"])
def test_a_path_that_would_not_mirror_into_the_tree_is_refused(path: str) -> None:
    with pytest.raises(Invalid):
        host_path(Path("/w/j/task"), path)


def test_an_output_directly_under_the_root_is_refused() -> None:
    with pytest.raises(Invalid, match="mounted"):
        mounts(task_of(outputs=[{"path": "/out.txt", "url": "quern://outputs/out.txt"}]))
