"""The capacity forecast as an operator reads it: the `display` object and the terminal page.

Owns turning a `capacity.Forecast` into words with the rules of `engine.domain.display`, once,
for both surfaces: `to_json` is the body of `GET /api/v1/ops/capacity` and `examreg capacity
--json` (the raw numbers, and beside them `display`), `report` the page `examreg capacity` prints
from the same `display` figures, so the terminal and the endpoint never disagree. Pure.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from engine.domain import display
from engine.domain.capacity import Forecast, Projection, Recommendation


def _expected_wait(f: Forecast) -> str:
    if f.backlog == 0:
        return "none: nothing waits"
    if f.drain_rate is None:
        return display.NOT_MEASURED
    if f.expected_wait_seconds is None or f.expected_wait_seconds > f.horizon_seconds:
        return f"{display.NOT_AT_THIS_RATE}: nothing drains"
    return display.duration(f.expected_wait_seconds)


def _time_to_drain(f: Forecast) -> str:
    if f.backlog == 0:
        return "nothing to drain"
    if f.drain_rate is None or f.arrival_rate is None:
        return display.NOT_MEASURED
    return display.due(f.time_to_drain_seconds, f.horizon_seconds)


def _time_to_limit(f: Forecast) -> str:
    text = display.due(f.time_to_limit_seconds, f.horizon_seconds)
    if text != display.NOT_AT_THIS_RATE and f.limit_shard is not None:
        text += f" (shard {f.limit_shard})"
    return text


def _drain(f: Forecast) -> str:
    if f.backlog == 0 and f.arrival_rate == 0 and f.drain_rate == 0:
        return "idle"
    return display.rate(f.drain_rate)


def _horizon(f: Forecast) -> str:
    if f.horizon_seconds == display.DEFAULT_HORIZON_SECONDS:
        return f"{display.duration(f.horizon_seconds)} (no window's close ahead)"
    return f"{display.duration(f.horizon_seconds)}, the window's close"


def _projection(p: Projection, now: datetime) -> dict[str, str]:
    reached = "not before the close"
    if p.limit_reached_at is not None:
        seconds = (p.limit_reached_at - now).total_seconds()
        reached = f"{display.due(seconds, math.inf)}, {display.instant(p.limit_reached_at)}"
    return {
        "closes_at": display.instant(p.closes_at),
        "closes_in": display.due(p.seconds_to_close, math.inf),
        "arrival_rate_now": display.rate(p.arrival_rate_now),
        "arrival_rate_at_close": display.rate(p.arrival_rate_at_close),
        "arrivals_until_close": display.count(p.arrivals_until_close),
        "assumed_drain_rate": display.rate(p.assumed_drain_rate),
        "backlog_at_close": display.count(p.backlog_at_close),
        "peak_backlog": display.count(p.peak_backlog),
        "limit_reached": reached,
    }


def _advice(running: int | None, needed: int | None, more: int | None) -> str:
    now = "?" if running is None else f"{running}"
    if needed is None:
        return f"{now} running, needed unknown (no rate measured yet)"
    action = "enough" if more == 0 else ("add some" if more is None else f"add {more}")
    return f"{now} running, {needed} needed: {action}"


def _recommendation(r: Recommendation) -> dict[str, str]:
    capacity = (
        "unknown"
        if r.writer_capacity is None
        else f"{display.rate(r.writer_capacity)} each "
        f"(measured from {r.writer_capacity_source.replace('_', ' ')})"
    )
    cost = (
        "unknown"
        if r.api_cpu_per_accept is None
        else f"{r.api_cpu_per_accept * 1000:.2f} ms CPU per accepted submission"
    )
    return {
        "target": display.duration(r.target_seconds),
        "planned_arrival_rate": display.rate(r.planned_arrival_rate),
        "required_drain_rate": display.rate(r.required_drain_rate),
        "writers": _advice(r.writers, r.writers_needed, r.more_writers),
        "writer_capacity": capacity,
        "api_workers": _advice(r.api_workers, r.api_workers_needed, r.more_api_workers),
        "api_cpu_per_accept": cost,
    }


def figures(f: Forecast) -> dict[str, Any]:
    """The forecast's figures in words: the `display` object of the endpoint's JSON."""
    return {
        "at": display.instant(f.at),
        "arrival_rate": display.rate(f.arrival_rate),
        "drain_rate": _drain(f),
        "backlog": display.count(f.backlog),
        "backlog_limit": display.count(f.backlog_limit),
        "expected_wait": _expected_wait(f),
        "time_to_drain": _time_to_drain(f),
        "time_to_limit": _time_to_limit(f),
        "headroom": display.ratio(f.headroom, arrivals=f.arrival_rate),
        "horizon": _horizon(f),
        "projection": None if f.projection is None else _projection(f.projection, f.at),
        "recommendation": _recommendation(f.recommendation),
    }


def to_json(f: Forecast) -> dict[str, Any]:
    """The body of `GET /api/v1/ops/capacity`: the raw numbers, and `display` beside them."""
    body = f.to_json()
    body["display"] = figures(f)
    return body


def report(f: Forecast) -> str:
    """The forecast as a page of text for `examreg capacity`."""
    d = figures(f)
    r = d["recommendation"]
    lines = [
        f"examreg capacity at {d['at']} "
        + (
            f"({f.samples} samples over {display.duration(f.span_seconds)})"
            if f.samples > 1
            else "(1 sample)"
        ),
        "",
        f"  arrivals        {d['arrival_rate']}",
        f"  drain           {d['drain_rate']}",
        f"  backlog         {d['backlog']} (shedding limit {d['backlog_limit']} in all)",
        f"  expected wait   {d['expected_wait']}  (Little's law: backlog / drain)",
        f"  time to drain   {d['time_to_drain']}",
        f"  time to limit   {d['time_to_limit']}",
        f"  headroom        {d['headroom']}  (drain capacity / arrivals)",
    ]
    p, shown = f.projection, d["projection"]
    if p is not None and shown is not None:
        lines += [
            "",
            f"  window closes   {p.closes_at.isoformat()} ({shown['closes_in']})",
            f"    arrivals      {shown['arrival_rate_now']} now on the trend, "
            f"{shown['arrival_rate_at_close']} at the close, "
            f"{shown['arrivals_until_close']} more until then",
            f"    backlog       {shown['backlog_at_close']} at the close "
            f"(peak {shown['peak_backlog']}) draining {shown['assumed_drain_rate']}",
            f"    shedding limit reached: {shown['limit_reached']}",
        ]
    lines += [
        "",
        f"  to keep accept-to-persist under {r['target']} (planned arrivals "
        f"{r['planned_arrival_rate']}, drain needed {r['required_drain_rate']}):",
        f"    writers       {r['writers']}; capacity {r['writer_capacity']}",
        f"    API workers   {r['api_workers']}; cost {r['api_cpu_per_accept']}",
        "",
        f"  'not at this rate': beyond {d['horizon']}",
    ]
    if f.notes:
        lines += ["", "  notes", *(f"    - {note}" for note in f.notes)]
    return "\n".join(lines) + "\n"
