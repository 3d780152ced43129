"""The Grafana dashboard (deploy/grafana/quern.json) charts every metric quern defines, and only those."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import services.gateway.domain.job_metrics
import services.gateway.plumbing.metrics
import services.gateway.scheduling.dispatcher
import services.results.metrics
import services.runner.metrics
import shared.metrics

DEFINING = (
    shared.metrics,
    services.runner.metrics,
    services.results.metrics,
    services.gateway.plumbing.metrics,
    services.gateway.domain.job_metrics,
    services.gateway.scheduling.dispatcher,
)
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
# Counted once a gateway has counted: the collector yields it only then.
COUNTED_LATER = {"quern_metrics_counted_timestamp_seconds"}


def defined() -> dict[str, set[str]]:
    """Every quern metric family this process registers -> the sample names a query may use."""
    assert DEFINING  # imported for the metrics they register
    families = {}
    for family in REGISTRY.collect():
        if family.name.startswith("quern_"):
            families[family.name] = {family.name + suffix for suffix in SUFFIXES[family.type]}
    return families | {name: {name} for name in COUNTED_LATER}


def queried(project: Path) -> set[str]:
    dashboard = json.loads((project / "deploy/grafana/quern.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return {name for expression in expressions for name in re.findall(r"\bquern_[a-z_]+\b", expression)}


def test_the_dashboard_queries_only_metrics_quern_defines(project: Path) -> None:
    samples = set().union(*defined().values())
    assert queried(project) <= samples, queried(project) - samples


def test_the_dashboard_charts_every_metric_quern_defines(project: Path) -> None:
    used = queried(project)
    unused = {family for family, samples in defined().items() if not samples & used}
    assert not unused
