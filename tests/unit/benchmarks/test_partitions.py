"""benchmarks/partitions.py's pure parts: the percentiles, the schema before 0011, the table."""

from __future__ import annotations

from pathlib import Path

from benchmarks import partitions


def test_figures_are_milliseconds_at_the_50th_95th_and_99th_percentiles() -> None:
    figure = partitions._figures([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert figure["n"] == 100
    assert figure["p50_ms"] == 51.0
    assert 94.0 <= figure["p95_ms"] <= 96.0 and 98.0 <= figure["p99_ms"] <= 100.0


def test_the_schema_before_stops_short_of_the_partitioning_migration(tmp_path: Path) -> None:
    names = sorted(p.name for p in partitions._schema_before(tmp_path / "s").iterdir())
    assert names and partitions.PARTITIONING not in names
    assert all(name < partitions.PARTITIONING for name in names)
    assert "0010_unit_review.sql" in names


def _side(rows_per_s: int, newest_ms: float) -> dict[str, object]:
    return {
        "drain": {"rows_per_s": rows_per_s, "writers": 2, "batch": 2000},
        "desk": {"activity_newest": {"p50_ms": newest_ms, "p99_ms": newest_ms * 2}},
        "tables": {
            t: {"heap_mb": 10, "indexes_mb": 5, "partitions": n}
            for t, n in (("registration_versions", 0), ("audit_log", 0))
        },
        "load_average": [1.0, 2.0, 3.0],
    }


def test_the_table_puts_both_sides_of_each_figure_in_one_row() -> None:
    results = {
        "config": {"versions": 5_000_000},
        "nice": 15,
        "migration_seconds": 100.7,
        "unpartitioned": _side(8038, 2593.66),
        "partitioned": _side(7928, 1.5),
    }
    text = partitions.markdown(results)
    assert "at 5,000,000 versions (nice 15;" in text
    assert "| drain, rows/s (2 connections, batches of 2000) | 8,038 | 7,928 |" in text
    assert "| activity_newest, p50 / p99 ms | 2593.66 / 5187.32 | 1.5 / 3.0 |" in text
    assert "Migration 0011 on that database: 100.7 s." in text
