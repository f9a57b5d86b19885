"""A batch's observations, made at once, give the series one observe() per value gives."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from engine.adapters import metrics


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_counts_like_one_observe_per_value() -> None:
    values = [0.0, 0.05, 0.07, 0.1, 0.3, 2.5, 2.6, 400.0, 5000.0, 0.05]
    one, many = CollectorRegistry(), CollectorRegistry()
    each = Histogram("t_seconds", "t", buckets=metrics.PERSIST_BUCKETS, registry=one)
    batch = Histogram("t_seconds", "t", buckets=metrics.PERSIST_BUCKETS, registry=many)
    for value in values:
        each.observe(value)
    metrics.observe_many(batch, values)
    assert _samples(many) == _samples(one)
    assert _samples(many)[("t_seconds_count", "")] == len(values)
    assert _samples(many)[("t_seconds_bucket", "0.05")] == 3  # a bound is inclusive (le)


def test_observe_many_of_nothing_changes_nothing() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", buckets=(1.0,), registry=registry)
    metrics.observe_many(histogram, [])
    assert _samples(registry)[("t_seconds_count", "")] == 0
