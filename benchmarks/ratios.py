"""The `ratios` object of results.json: the verdict of a run in a few numbers (pure).

Every key is always present. A value is null when the phase it comes from did not run (or did not
produce the figure, e.g. a peer that held no rate at all): never a default, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEYS = (
    "accept_vs_hello",  # examreg's open-loop knee / hello-world's (same stack, same bytes)
    "accept_vs_naive",  # examreg's open-loop knee / the naive INSERT-per-request peer's
    "wrk_accept_vs_hello",  # the same with wrk's closed-loop 2xx/s
    "wrk_accept_vs_naive",
    "cpu_vs_naive",  # CPU µs per request at the knee, all processes: examreg / naive
    "cpu_vs_hello",
    "drain_vs_copy",  # writer rows/s / raw COPY rows/s, empty history
    "drain_grown_vs_empty",  # writer rows/s with the grown history / with an empty one
    "season_seconds",  # the whole roster, empty queue → all persisted
    "lost",  # acknowledged receipts of the season without their row
    "duplicated",  # season rows beyond the first per (candidate, key)
    "spike_admitted_p99_ms",  # examreg, 2× its knee
    "spike_admitted_p99_ms_naive",  # the naive peer, the same offered load
    "me_p99_ms_alone",  # GET /api/v1/me, logged-in users, no storm
    "me_p99_ms_during_login_storm",
    "scale_drain_4_vs_1_writers",  # drain rows/s with 4 writer processes / with 1
    "scale_accept_2_vs_1_api",  # accept knee with 2 API processes / with 1
    "cluster_vs_single",  # enqueue/s on the cluster (WAITAOF 1 1) / on one Valkey
    "waitaof_added_p99_ms",  # the cluster's enqueue p99 with WAITAOF 1 1 minus without
)


def _get(results: Mapping[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _divide(a: Any, b: Any, digits: int = 3) -> float | None:
    """a / b, or None when either is missing or b is not positive."""
    top, bottom = _number(a), _number(b)
    if top is None or bottom is None or bottom <= 0:
        return None
    return round(top / bottom, digits)


def compute(results: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The ratios of one run's results (see KEYS)."""
    accept = results.get("accept") or {}

    def knee(peer: str) -> Any:
        return _get(accept, peer, "max_rate")

    def wrk(peer: str) -> Any:
        return _get(accept, peer, "wrk", "ok_per_s")

    def cpu(peer: str) -> Any:
        return _get(accept, peer, "cpu_at_max", "us_per_request", "total")

    return {
        "accept_vs_hello": _divide(knee("examreg"), knee("hello")),
        "accept_vs_naive": _divide(knee("examreg"), knee("naive")),
        "wrk_accept_vs_hello": _divide(wrk("examreg"), wrk("hello")),
        "wrk_accept_vs_naive": _divide(wrk("examreg"), wrk("naive")),
        "cpu_vs_naive": _divide(cpu("examreg"), cpu("naive")),
        "cpu_vs_hello": _divide(cpu("examreg"), cpu("hello")),
        "drain_vs_copy": _divide(
            _get(results, "drain", "writer_rows_per_s"), _get(results, "drain", "copy_rows_per_s")
        ),
        "drain_grown_vs_empty": _divide(
            _get(results, "growth", "drain_at_target", "writer_rows_per_s"),
            _get(results, "drain", "writer_rows_per_s"),
        ),
        "season_seconds": _number(_get(results, "season", "wall_seconds")),
        "lost": _number(_get(results, "season", "lost")),
        "duplicated": _number(_get(results, "season", "duplicated")),
        "spike_admitted_p99_ms": _number(_get(results, "spike", "examreg", "admitted_p99_ms")),
        "spike_admitted_p99_ms_naive": _number(_get(results, "spike", "naive", "admitted_p99_ms")),
        "me_p99_ms_alone": _number(_get(results, "logins", "me_alone", "p99_ms")),
        "me_p99_ms_during_login_storm": _number(_get(results, "logins", "me_during", "p99_ms")),
        "scale_drain_4_vs_1_writers": _divide(
            _get(results, "scale", "drain", "4", "writer_rows_per_s"),
            _get(results, "scale", "drain", "1", "writer_rows_per_s"),
        ),
        "scale_accept_2_vs_1_api": _divide(
            _get(results, "scale", "accept", "2", "max_rate"),
            _get(results, "scale", "accept", "1", "max_rate"),
        ),
        "cluster_vs_single": _divide(
            _get(results, "scale", "cluster", "cluster_waitaof", "per_second"),
            _get(results, "scale", "cluster", "single", "per_second"),
        ),
        "waitaof_added_p99_ms": _number(
            _get(results, "scale", "cluster", "waitaof_cost", "added_p99_ms")
        ),
    }
