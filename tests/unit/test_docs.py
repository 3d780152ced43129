"""The docs are part of the product: they must match the code (the settings table) and what is vendored."""

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


def test_the_docs_name_the_swagger_ui_version_that_is_vendored(project: Path) -> None:
    vendored = project / "services/gateway/plumbing/static/swagger-ui"
    bundled = re.findall(r'PACKAGE_VERSION:"([0-9.]+)"', (vendored / "swagger-ui-bundle.js").read_text())
    assert len(bundled) == 1
    for doc in (vendored / "README.md", project / "docs/api.md", project / "docs/operations.md"):
        assert re.findall(r"Swagger UI ([0-9]+\.[0-9]+\.[0-9]+)", doc.read_text()) == bundled, doc
