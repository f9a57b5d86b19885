"""results.md from results.json: one table of the figures, then how each was obtained."""

from __future__ import annotations

from typing import Any


def _n(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f} MiB"


def _accept_rows(accept: dict[str, Any]) -> list[str]:
    rows = []
    for name, label in (
        ("examreg", "examreg (session, validation, durable enqueue; a writer draining)"),
        ("naive", "naive baseline (same session + validation, INSERT … ON CONFLICT per request)"),
        ("hello", "hello-world (same stack, same request bytes)"),
    ):
        found = accept.get(name) or {}
        at_max = found.get("at_max") or {}
        rows.append(
            f"| 1 | accept: max rate with p99 < 100 ms — {label}"
            f" | {_n(found.get('max_rate'), '/s')} | p99 {_n(at_max.get('p99_ms'), ' ms')}"
            f" at that rate; first failure {found.get('first_failure')} |"
        )
    examreg = (accept.get("examreg") or {}).get("max_rate")
    naive = (accept.get("naive") or {}).get("max_rate")
    hello = (accept.get("hello") or {}).get("max_rate")
    rows.append(f"| 1 | examreg / naive | {_ratio(examreg, naive)} | |")
    rows.append(f"| 1 | examreg / hello-world | {_ratio(examreg, hello)} | |")
    wrk = accept.get("hello_wrk_closed_loop")
    if wrk:
        rows.append(
            f"| 1 | (reference) hello-world, wrk closed loop, 64 connections |"
            f" {_n(wrk['requests_per_s'], '/s')} | wrk's throughput, no latency bound |"
        )
    return rows


def _drain_rows(number: str, label: str, drain: dict[str, Any] | None) -> list[str]:
    if not drain:
        return [f"| {number} | {label} | — | not measured |"]
    return [
        f"| {number} | {label}: writer rows/s (history + current + XACK/trim) |"
        f" {_n(drain['writer_rows_per_s'], '/s')} | {drain['entries']:,} entries,"
        f" {drain['existing_versions']:,} versions already in the history,"
        f" {drain['writers']} writer process(es) |",
        f"| {number} | {label}: raw COPY of the same rows (ceiling) |"
        f" {_n(drain['copy_rows_per_s'], '/s')} | writer / COPY = {drain['writer_to_copy']:.2f} |",
    ]


def render(results: dict[str, Any]) -> str:
    """The table and its notes."""
    config = results.get("config", {})
    machine = results.get("machine", {})
    after = results.get("machine_after", {})
    season = results.get("season") or {}
    growth = results.get("growth") or {}
    spike = results.get("spike") or {}
    lines = [
        "# examreg benchmark",
        "",
        f"{machine.get('at', '?')}: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}),"
        f" load average before {machine.get('load_average')}, after {after.get('load_average')};"
        f" scale {config.get('scale')} ({config.get('candidates', 0):,} candidates),"
        f" {config.get('workers')} server processes for every server, {config.get('writers')}"
        f" writer process(es); total {results.get('total_seconds', 0):,.0f} s.",
        "",
        "| # | figure | value | notes |",
        "|---|---|---|---|",
        *_accept_rows(results.get("accept") or {}),
        *_drain_rows("2", "drain (empty history)", results.get("drain")),
    ]
    if season:
        lines += [
            f"| 3 | season: {season['registrations']:,} registrations, empty queue → all persisted"
            f" | {_n(season['wall_seconds'], ' s')} | {season['acknowledged']:,} acknowledged,"
            f" {season.get('unanswered', 0):,} unanswered; closed loop, {season['connections']}"
            f" connections: {season['accepted_per_s']:,.0f} accepted/s, service p99"
            f" {season['accept']['service_p99_ms']} ms, {season['accept']['retried']:,} shed and"
            f" retried with the same key; all acknowledged after"
            f" {season['acknowledged_after_s']:,.0f} s |",
            f"| 3 | season: peak backlog | {season['peak_backlog']:,} entries | sampled every 0.5 s"
            " |",
            f"| 3 | season: peak Redis memory | {_mib(season['peak_redis_memory_bytes'])} |"
            f" {_mib(season['redis_memory_before_bytes'])} before (the minted sessions and earlier"
            " phases' records) |",
            f"| 3 | season: lost / duplicated | {season['lost']} / {season['duplicated']} |"
            f" {season['acknowledged']:,} acknowledged receipts in the driver's ledger;"
            f" {season['persisted_rows']:,} history rows with the season's keys |",
        ]
    else:
        lines.append("| 3 | season | — | not measured |")
    lines += _drain_rows("4", f"drain with {config.get('history_target', 0):,} versions",
                         growth.get("drain_at_target"))  # fmt: skip
    for share in (50, 90):
        found = growth.get(f"accept_at_{share}pct")
        if found:
            lines.append(
                f"| 4 | accept p99 at {share}% of max ({found['target_rate']:,.0f}/s),"
                f" grown history | {_n(found['p99_ms'], ' ms')} | p50 {found['p50_ms']} ms;"
                f" {found['ok']:,}/{found['scheduled']:,} accepted |"
            )
    if spike:
        lines += [
            f"| 5 | spike: {spike['rate']:,}/s (2× max) for {spike['seconds']:.0f} s — share shed"
            f" (503/429) | {spike['shed_share']:.1%} | statuses {spike['statuses']},"
            f" codes {spike.get('codes', {})};"
            f" {spike['abandoned_share']:.1%} abandoned unsent after 10 s |",
            f"| 5 | spike: p99 of admitted requests | {_n(spike['admitted_p99_ms'], ' ms')} |"
            " from the intended send time; from the actual send (all answers):"
            f" {_n(spike.get('service_p99_ms'), ' ms')}; the driver's own send lag p99"
            f" {_n(spike.get('send_lag_p99_ms'), ' ms')} |",
            f"| 5 | spike: time to drain afterwards | {_n(spike['queue_drained_after_s'], ' s')} |"
            f" last answer {spike['answers_done_after_s']} s after the spike; then the queue |",
        ]
    notes = NOTES.format(step=config.get("step_seconds", 7), bisections=config.get("bisections", 2))
    lines += ["", notes]
    return "\n".join(lines) + "\n"


NOTES = """## How each number was obtained

- **Load generator**: `loadtest/driver.py`, an open-loop client on asyncio + uvloop in its own
  process (Debian has no wrk2 or oha; wrk has no rate control). Request *i* is intended at
  t0 + i/rate and latency is measured from that instant, so queueing in the client counts
  (coordinated-omission safe). `send lag` in results.json shows how late the driver itself was;
  it costs ~50 µs of CPU per request, so on 2 shared cores it caps the hello-world figure, which is
  therefore a lower bound of the ceiling (wrk's closed-loop throughput is given for reference).
- **1 Accept**: constant-rate steps of {step:g} s (first 2 s not measured), ×1.5 until a step
  fails (retried once), then {bisections} bisections. A step passes with p99 < 100 ms, every request
  answered, ≥ 99.9% 2xx and ≥ 97% of the target rate achieved. Every request is a PUT of a valid
  form of a different candidate with a fresh Idempotency-Key; the same bytes go to hello-world
  (path /hello). examreg runs `examreg serve` with one writer draining at the same time; each
  examreg step starts from an empty queue.
- **2 Drain**: the streams are pre-filled through the API's own server-side function (no HTTP),
  then one `examreg writer` is started; the time runs from its first read to the last entry
  trimmed (trim follows COMMIT, XACK and release). The ceiling COPYs the same rows (read from the
  streams) into a plain table of the same columns in one transaction.
- **3 Season**: every candidate of the roster submits once, at full throughput: the driver in
  closed loop with 64 connections (at the open-loop rate of figure 1 the season would not fit the
  30-minute budget); a 503/429 is re-sent after 0.5 s with the same key and body, as the app does.
  Wall time from the first request to the last stream entry trimmed (after COMMIT).
  The driver's ledger (candidate, key, receipt of every 202) is compared with
  `registration_versions`: lost = acknowledged receipts without their row; duplicated = rows with
  the same (candidate, key) beyond the first.
- **4 Growth**: filler history rows (small form, real index sizes) bring `registration_versions`
  to the target, then the drain is measured again; accept p99 at 50% and 90% of the max rate in
  15 s steps.
- **5 Spike**: twice the max rate for the spike's duration, open loop, up to 1,024 connections;
  a request the client could not send within 10 s is abandoned (a user giving up).
- **Shortcuts**: the roster shares one argon2id hash (`--load-test-password`, load tests only);
  sessions are minted directly in Redis in the session store's format instead of 1.2 M logins.
"""
