"""Reading a Prometheus exposition as the tests check it: parsed by prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of the exposition: (name, its labels) -> value; a malformed exposition raises."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly these labels; 0 when there is none (a counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    """Every value ``label`` takes among the samples named ``name``."""
    return {dict(labels)[label] for sample, labels in samples if sample == name and label in dict(labels)}
