"""results.md from results.json: the ratios, the figures side by side, how each was obtained."""

from __future__ import annotations

from typing import Any

from benchmarks import ratios

PEER_LABELS = {
    "examreg": "examreg",
    "naive": "naive (INSERT per request)",
    "hello": "hello-world",
}
CPU_KINDS = ("api", "valkey", "postgres", "writer", "total")
RATIO_NOTES = {
    "accept_vs_hello": "open-loop knee, examreg / hello-world",
    "accept_vs_naive": "open-loop knee, examreg / naive",
    "wrk_accept_vs_hello": "wrk closed-loop 2xx/s, examreg / hello-world",
    "wrk_accept_vs_naive": "wrk closed-loop 2xx/s, examreg / naive",
    "cpu_vs_naive": "CPU µs per request at the knee (all processes), examreg / naive",
    "cpu_vs_hello": "CPU µs per request at the knee (all processes), examreg / hello-world",
    "drain_vs_copy": "writer rows/s / raw COPY rows/s, empty history",
    "drain_grown_vs_empty": "writer rows/s, grown history / empty history",
    "season_seconds": "the whole roster, empty queue → all persisted (s)",
    "lost": "acknowledged receipts without their row",
    "duplicated": "history rows beyond the first per (candidate, key)",
    "spike_admitted_p99_ms": "examreg, 2× its knee: p99 of admitted requests (ms)",
    "spike_admitted_p99_ms_naive": "naive, the same offered load: p99 of admitted requests (ms)",
    "me_p99_ms_alone": "GET /api/v1/me p99, logged-in users, no storm (ms)",
    "me_p99_ms_during_login_storm": "GET /api/v1/me p99 during a login storm (ms)",
    "scale_drain_4_vs_1_writers": "writer rows/s, 4 writer processes / 1 (scale phase)",
    "scale_accept_2_vs_1_api": "open-loop knee, 2 API processes / 1 (scale phase)",
    "cluster_vs_single": "enqueue/s, 3-master cluster with WAITAOF 1 1 / one Valkey",
    "waitaof_added_p99_ms": "the cluster's enqueue p99, with WAITAOF 1 1 minus without (ms)",
}


def _n(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text}{unit}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f} MiB"


def _ratio_rows(values: dict[str, Any]) -> list[str]:
    rows = ["| ratio | value | what |", "|---|---|---|"]
    for key in ratios.KEYS:
        value = values.get(key)
        shown = "null (not measured)" if value is None else f"{value:,}"
        rows.append(f"| `{key}` | {shown} | {RATIO_NOTES[key]} |")
    return rows


def _peers_table(accept: dict[str, Any]) -> list[str]:
    """One column per peer: knee, wrk, CPU per request by process kind."""
    peers = [p for p in PEER_LABELS if p in accept]
    if not peers:
        return ["accept: not measured"]
    head = "| | " + " | ".join(PEER_LABELS[p] for p in peers) + " |"
    rows = [head, "|---" * (len(peers) + 1) + "|"]

    def row(label: str, cell: Any) -> None:
        rows.append(f"| {label} | " + " | ".join(cell(accept[p]) for p in peers) + " |")

    row("open-loop knee (p99 < 100 ms, no refusal)", lambda a: _n(a.get("max_rate"), "/s"))
    row("p99 at the knee", lambda a: _n((a.get("at_max") or {}).get("p99_ms"), " ms"))
    row("first failing step", lambda a: str(a.get("first_failure") or "—"))
    row("wrk closed loop, 2xx/s", lambda a: _wrk(a, "ok_per_s", "/s"))
    row("wrk p99 (closed loop: not CO-safe)", lambda a: _wrk(a, "p99_ms", " ms"))
    row("wrk non-2xx answers", lambda a: _wrk(a, "non_2xx", ""))
    for kind in CPU_KINDS:
        row(f"CPU µs/request at the knee: {kind}", lambda a, k=kind: _cpu(a.get("cpu_at_max"), k))
    for kind in CPU_KINDS:
        row(f"CPU µs/request under wrk: {kind}", lambda a, k=kind: _cpu(a.get("wrk"), k, "cpu"))
    return rows


def _wrk(found: dict[str, Any], key: str, unit: str) -> str:
    figure = found.get("wrk") or {}
    if "skipped" in figure:
        return "skipped"
    return _n(figure.get(key), unit)


def _cpu(figure: dict[str, Any] | None, kind: str, nested: str | None = None) -> str:
    if figure and nested:
        figure = figure.get(nested)
    if not figure:
        return "—"
    return _n(figure["us_per_request"].get(kind))


def _drain_rows(number: str, label: str, drain: dict[str, Any] | None) -> list[str]:
    if not drain:
        return [f"| {number} | {label} | — | not measured |"]
    return [
        f"| {number} | {label}: writer rows/s (history + current + XACK/trim) |"
        f" {_n(drain['writer_rows_per_s'], '/s')} | {drain['entries']:,} entries,"
        f" {drain['existing_versions']:,} versions already in the history,"
        f" {drain['writers']} writer process(es) |",
        f"| {number} | {label}: raw COPY of the same rows (ceiling) |"
        f" {_n(drain['copy_rows_per_s'], '/s')} | writer / COPY = {_n(drain['writer_to_copy'])}"
        + ("" if drain["writer_rows_per_s"] else " (the drain was too quick to time)")
        + " |",
    ]


def _season_rows(season: dict[str, Any]) -> list[str]:
    if not season:
        return ["| 3 | season | — | not measured |"]
    cpu = (season.get("cpu") or {}).get("us_per_request") or {}
    return [
        f"| 3 | season: {season['registrations']:,} registrations, empty queue → all persisted"
        f" | {_n(season['wall_seconds'], ' s')} | {season['acknowledged']:,} acknowledged,"
        f" {season.get('unanswered', 0):,} unanswered; closed loop, {season['connections']}"
        f" connections: {season['accepted_per_s']:,.0f} accepted/s, service p99"
        f" {season['accept']['service_p99_ms']} ms, {season['accept']['retried']:,} shed and"
        f" retried with the same key; all acknowledged after"
        f" {season['acknowledged_after_s']:,.0f} s |",
        f"| 3 | season: peak backlog | {season['peak_backlog']:,} entries | sampled every 0.5 s |",
        f"| 3 | season: peak Redis memory | {_mib(season['peak_redis_memory_bytes'])} |"
        f" {_mib(season['redis_memory_before_bytes'])} before (the minted sessions and earlier"
        " phases' records) |",
        f"| 3 | season: lost / duplicated | {season['lost']} / {season['duplicated']} |"
        f" {season['acknowledged']:,} acknowledged receipts in the driver's ledger;"
        f" {season['persisted_rows']:,} history rows with the season's keys |",
        f"| 3 | season: CPU µs per request, all processes | {_n(cpu.get('total'))} | "
        + "; ".join(f"{k} {_n(cpu.get(k))}" for k in CPU_KINDS[:-1])
        + " |",
    ]


def _growth_rows(growth: dict[str, Any], history: int) -> list[str]:
    rows = _drain_rows("4", f"drain with {history:,} versions", growth.get("drain_at_target"))
    for share in (50, 90):
        found = growth.get(f"accept_at_{share}pct")
        if found:
            rows.append(
                f"| 4 | accept p99 at {share}% of max ({found['target_rate']:,.0f}/s),"
                f" grown history | {_n(found['p99_ms'], ' ms')} | p50 {found['p50_ms']} ms;"
                f" {found['ok']:,}/{found['scheduled']:,} accepted |"
            )
    return rows


def _spike_table(spike: dict[str, Any]) -> list[str]:
    peers = [p for p in ("examreg", "naive") if p in spike]
    if not peers:
        return [f"spike: {spike.get('skipped', 'not measured')}"]
    rows = [
        f"Offered {spike['rate']:,}/s (2× examreg's knee) for {spike['seconds']:.0f} s, open loop,"
        " up to 1,024 connections; a request unsent after 10 s is abandoned.",
        "",
        "| | " + " | ".join(PEER_LABELS[p] for p in peers) + " |",
        "|---" * (len(peers) + 1) + "|",
    ]
    cells: list[tuple[str, Any]] = [
        ("offered", lambda s: f"{s['offered']:,}"),
        ("admitted (2xx)", lambda s: f"{s['admitted']:,}"),
        ("shed (503/429)", lambda s: f"{s['shed_share']:.1%}"),
        ("abandoned unsent", lambda s: f"{s['abandoned_share']:.1%}"),
        ("unanswered / connection errors", lambda s: f"{s['unfinished']:,} / {s['errors']:,}"),
        ("p99 of admitted (from intended send)", lambda s: _n(s["admitted_p99_ms"], " ms")),
        ("p99 from the actual send (all answers)", lambda s: _n(s["service_p99_ms"], " ms")),
        ("driver send lag p99", lambda s: _n(s["send_lag_p99_ms"], " ms")),
        ("last answer after the spike", lambda s: _n(s["answers_done_after_s"], " s")),
        ("queue drained after the spike", lambda s: _n(s["queue_drained_after_s"], " s")),
        ("statuses", lambda s: str(s["statuses"])),
    ]
    for label, cell in cells:
        rows.append(f"| {label} | " + " | ".join(cell(spike[p]) for p in peers) + " |")
    return rows


def _logins_rows(logins: dict[str, Any]) -> list[str]:
    if not logins:
        return ["| 6 | login storm | — | not measured |"]
    storm = logins["storm"]
    rows = []
    for key, label in (("me_alone", "alone"), ("me_during", "during the login storm")):
        found = logins[key]
        rows.append(
            f"| 6 | GET /api/v1/me p99, {label} | {_n(found['p99_ms'], ' ms')} |"
            f" open loop {found['target_rate']:,.0f}/s for {logins['seconds']:g} s; p50"
            f" {_n(found['p50_ms'], ' ms')}; {found['ok']:,}/{found['scheduled']:,} 2xx,"
            f" statuses {found['statuses']} |"
        )
    rows.append(
        f"| 6 | login storm: logged in/s | {_n(storm['logged_in_per_s'], '/s')} |"
        f" {logins['storm_rate']:,.0f}/s offered, up to {logins['storm_connections']}"
        f" connections: {storm['logged_in']:,} logged in, {storm['shed']:,} shed,"
        f" {storm['abandoned']:,} abandoned unsent,"
        f" {storm.get('unanswered_at_the_end', 0):,} unanswered at the end; codes"
        f" {storm['codes']} |"
    )
    return rows


def _scale_rows(scale: dict[str, Any]) -> list[str]:
    """Capacity per node: one row per writer count and per API process count."""
    if not scale:
        return ["scale: not measured"]
    rows = ["| processes | figure | value | notes |", "|---|---|---|---|"]
    for writers, drain in sorted((scale.get("drain") or {}).items(), key=lambda kv: int(kv[0])):
        cpu = drain.get("cpu_us_per_row") or {}
        rows.append(
            f"| {writers} writer(s) | drain rows/s | {_n(drain['writer_rows_per_s'], '/s')} |"
            f" {drain['entries']:,} entries over {drain['existing_versions']:,} versions; CPU µs"
            f" per row: writer {_n(cpu.get('writer'))}, PostgreSQL {_n(cpu.get('postgres'))},"
            f" Valkey {_n(cpu.get('valkey'))}; load average {drain['load_average'][0]:.1f} |"
        )
    for workers, found in sorted((scale.get("accept") or {}).items(), key=lambda kv: int(kv[0])):
        cpu = ((found.get("cpu_at_max") or {}).get("us_per_request")) or {}
        source = "the accept phase's knee" if found.get("from") == "accept" else "its own knee"
        rows.append(
            f"| {workers} API process(es) | open-loop knee | {_n(found['max_rate'], '/s')} |"
            f" {source}; CPU µs per request: API {_n(cpu.get('api'))}, total"
            f" {_n(cpu.get('total'))} |"
        )
    found = scale.get("cluster") or {}
    labels = {
        "single": "one Valkey (AOF always)",
        "cluster_no_waitaof": "3 masters + 3 replicas, master's fsync only",
        "cluster_waitaof": "3 masters + 3 replicas, WAITAOF 1 1",
    }
    for case, label in labels.items():
        if case in found:
            figure = found[case]
            rows.append(
                f"| {label} | enqueue/s | {_n(figure['per_second'], '/s')} | p50"
                f" {_n(figure['p50_ms'], ' ms')}, p99 {_n(figure['p99_ms'], ' ms')};"
                f" {found['tasks']} tasks, {found['seconds_each']:g} s |"
            )
    return rows


def render(results: dict[str, Any]) -> str:
    """The ratios, the tables and their notes."""
    config = results.get("config", {})
    machine = results.get("machine", {})
    after = results.get("machine_after", {})
    accept = results.get("accept") or {}
    mode = "BENCH_QUICK (scaled down: noisy, for development)" if config.get("quick") else (
        f"scale {config.get('scale')}"
    )  # fmt: skip
    lines = [
        "# examreg benchmark",
        "",
        f"{machine.get('at', '?')}: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}),"
        f" load average before {machine.get('load_average')}, after {after.get('load_average')};"
        f" {mode} ({config.get('candidates', 0):,} candidates), {config.get('workers')} server"
        f" processes for every server, {config.get('writers')} writer process(es); total"
        f" {results.get('total_seconds', 0):,.0f} s. The machine is shared: rates move with the"
        " neighbours' load (see the load averages); CPU per request moves much less.",
    ]
    failed = results.get("failed")
    if failed:
        lines += ["", f"**The run stopped in phase `{failed['phase']}`**: {failed['error']}"]
    wrk_note = (results.get("wrk") or {}).get("note")
    if wrk_note:
        lines += ["", f"wrk figures skipped: {wrk_note}."]
    lines += [
        "",
        "## Ratios (results.json `ratios`)",
        "",
        *_ratio_rows(results.get("ratios") or ratios.compute(results)),
        "",
        "## Accept, side by side",
        "",
        *_peers_table(accept),
        "",
        "## Spike, side by side",
        "",
        *_spike_table(results.get("spike") or {}),
        "",
        "## Every figure",
        "",
        "| # | figure | value | notes |",
        "|---|---|---|---|",
        *_drain_rows("2", "drain (empty history)", results.get("drain")),
        *_season_rows(results.get("season") or {}),
        *_growth_rows(results.get("growth") or {}, config.get("history_target", 0)),
        *_logins_rows(results.get("logins") or {}),
        "",
        "## Scale: capacity per node (docs/capacity.md)",
        "",
        *_scale_rows(results.get("scale") or {}),
    ]
    notes = NOTES.format(
        step=config.get("step_seconds", 7),
        warmup=config.get("step_warmup", 2),
        bisections=config.get("bisections", 2),
        wrk=config.get("wrk_seconds", 15),
    )
    lines += ["", notes]
    return "\n".join(lines) + "\n"


NOTES = """## How each number was obtained

- **Load generator**: `loadtest/driver.py`, an open-loop client on asyncio + uvloop in its own
  process (Debian has no wrk2 or oha; wrk has no rate control). Request *i* is intended at
  t0 + i/rate and latency is measured from that instant, so queueing in the client counts
  (coordinated-omission safe). `send lag` in results.json shows how late the driver itself was;
  it costs ~50 µs of CPU per request, so on 2 shared cores it caps the hello-world figure, which is
  therefore a lower bound of the ceiling.
- **1 Accept, the knee**: constant-rate steps of {step:g} s (first {warmup:g} s not measured),
  ×1.5 until a step fails (halving instead when the first step fails), then {bisections}
  bisection(s); a failing step is run once more before it counts. A step passes with p99 < 100 ms
  and no refusal: every request answered, every answer 2xx (no 503/429), no connection error, ≥ 97%
  of the target rate achieved. Every request is a PUT of a valid form of a different candidate
  with a fresh Idempotency-Key; the same bytes go to hello-world (path /hello). examreg runs
  `examreg serve` with one writer draining at the same time; each examreg step starts from an empty
  queue and ends when the writer has emptied it again.
- **1 Accept, wrk**: `wrk -t2 -c64 -d{wrk:g}s` with `loadtest/accept.lua` (the same PUT bytes to
  every peer, fresh keys): closed loop, full throughput, 2xx answers per second. Its latencies are
  not coordinated-omission safe; the knee is the latency-bound figure.
- **CPU µs per request**: utime + stime (+ cutime + cstime of reaped children) from
  `/proc/<pid>/stat` of each process tree (API: the server and its workers; Valkey; PostgreSQL: the
  postmaster and every backend; writer) over the step at the knee (from the first request to the
  queue drained), and over the wrk run, divided by the requests answered. It includes what each
  process does while idle in that window (timers, the writer's blocking reads, PostgreSQL's
  background workers), which weighs more at a low knee, and the benchmark's own backlog polls
  (one Valkey round trip per 0.1 s) in Valkey's share.
- **2 Drain**: the streams are pre-filled through the API's own server-side function (no HTTP),
  then one `examreg writer` is started; the time runs from its first read to the last entry
  trimmed (trim follows COMMIT, XACK and release). The ceiling COPYs the same rows (read from the
  streams) into a plain table of the same columns in one transaction.
- **3 Season**: every candidate of the roster submits once, at full throughput: the driver in
  closed loop with 64 connections; a 503/429 is re-sent after 0.5 s with the same key and body, as
  the app does. Wall time from the first request to the last stream entry trimmed (after COMMIT).
  The driver's ledger (candidate, key, receipt of every 202) is compared with
  `registration_versions`: lost = acknowledged receipts without their row; duplicated = rows with
  the same (candidate, key) beyond the first.
- **4 Growth**: filler history rows (small form, real index sizes) bring `registration_versions`
  to the target, then the drain is measured again; accept p99 at 50% and 90% of the knee.
- **5 Spike**: twice examreg's knee for the spike's duration, open loop, up to 1,024 connections,
  against examreg and then the naive peer (each from a settled database); a request the client
  could not send within 10 s is abandoned (a user giving up). The naive peer has no queue: its
  202 is committed, so it has no drain time.
- **6 Logins**: `loadtest/login_storm.sh` as a phase, with the open-loop driver instead of wrk:
  GET /api/v1/me for already logged-in candidates at a constant rate (600/s, or half of
  examreg's accept knee when that is lower), alone, then while a storm of POST
  /api/v1/auth/login (argon2id, the configured parameters) is offered at several times what the
  hash slots admit (the excess is shed with 503 + Retry-After). The storm starts 1 s before the
  measured users and stops 1 s after them. p99 over all answers, 503s included (their count is
  beside it).
- **Shortcuts**: the roster shares one argon2id hash (`--load-test-password`, load tests only);
  sessions are minted directly in Redis in the session store's format instead of 1.2 M logins.
- **7 Scale**: the drain of phase 2 again with 1, 2 and 4 `examreg writer` processes (over the
  history the earlier phases left), and the knee of phase 1 with 1 and 2 API processes (the accept
  phase's own knee stands for its process count), then `benchmarks/cluster.py`: the API's
  enqueue (`streams.Enqueuer`, closed loop, 64 tasks) on one Valkey and on a 3-master cluster with
  a replica each, with and without `WAITAOF 1 1`, on servers of its own. One machine: the
  processes share its 2 cores with PostgreSQL and Valkey, so the figures show where one node
  saturates, not a cluster's scaling.
- **Ratios**: `benchmarks/ratios.py`; null means the phase did not run or gave no figure.
"""
