"""The docs are part of the product: the configuration guide's settings table must match the settings code."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import GatewaySettings, ResultsSettings, RunnerSettings, SchedulerSettings


def test_configuration_table_lists_exactly_the_settings(project: Path) -> None:
    guide = (project / "docs/configuration.md").read_text()
    table = guide.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    processes = (GatewaySettings, SchedulerSettings, RunnerSettings, ResultsSettings)
    fields = {name.upper() for cls in processes for name in cls.model_fields}
    assert documented == fields
