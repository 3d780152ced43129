"""``just image-check`` runs the image as deploy/ says to: the runner's options, the build's arguments."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from devstack.image_check import RUNNER_SECURITY


def test_the_image_check_gives_the_runner_exactly_the_security_options_compose_does(project: Path) -> None:
    compose = yaml.safe_load((project / "deploy/compose.yml").read_text())
    assert RUNNER_SECURITY[0::2] == ("--security-opt",) * (len(RUNNER_SECURITY) // 2)
    assert sorted(RUNNER_SECURITY[1::2]) == sorted(compose["services"]["runner"]["security_opt"])


def test_the_dockerfile_takes_the_base_and_the_wheelhouse_the_image_check_gives_it(project: Path) -> None:
    dockerfile = (project / "deploy/Dockerfile").read_text()
    assert re.search(r"^ARG BASE=\S+\n+FROM \$\{BASE\} AS system$", dockerfile, flags=re.MULTILINE)
    declared = set(re.findall(r"^ARG (PIP_\w+)$", dockerfile, flags=re.MULTILINE))
    assert declared == {"PIP_NO_INDEX", "PIP_FIND_LINKS"}
