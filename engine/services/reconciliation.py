"""Reconciliation: prove every acknowledged version is stored, and make Redis stop saying
`queued` about what PostgreSQL already holds.

Owns `reconcile` (issue 14 item 4, the gate before the unit review): every candidate hash's
version counter (versions 1..N were each acknowledged) against the streams, their pending
lists, the dead-letter streams and PostgreSQL's history and current rows, listing exceptions by
kind (`engine.domain.reconciliation`); then every current row against Redis. It runs beside
live APIs and writers: the streams are read first, and a version that looks missing is read
again (the streams' newer entries, then PostgreSQL) before it is reported. Memory is bounded by
a page of candidates, the backlog and the report's sample.

It also owns the sweep that releases stale read-your-writes records: a receipt's `rcpt:` marker
(and the latest form) left in a candidate's hash although its version is committed, so the
receipt would answer `queued` forever. The writer settles a batch (release and acknowledge) in
one atomic call after COMMIT, so a crash can no longer leave such a marker; the sweep repairs
those that earlier writers or an incident left behind. Writers run it once at start for their
shards; `reconcile` releases the ones it meets. It must not read a request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.adapters import backend, ledger, ledger_store, metrics, store, streams
from engine.domain import reconciliation as rules
from engine.domain.reconciliation import CandidateFacts, Report
from engine.settings import Settings

log = logging.getLogger("examreg.reconcile")


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep found and repaired."""

    queued: int  # markers seen, still queued or not
    released: int  # of them already persisted, now released


async def release_persisted_markers(
    client: backend.Redis, pool: backend.Pool, shards: Collection[int], *, page: int = 500
) -> SweepResult:
    """Release every queued marker on `shards` whose version PostgreSQL already holds.

    Safe beside live writers and APIs: a version, once committed, stays committed, so releasing
    it is right whenever it happens; markers of versions still in the stream are left alone.
    """
    queued = released = 0
    async for markers in streams.queued_markers(client, shards, page=page):
        queued += len(markers)
        persisted = await store.persisted_versions(
            pool, [(m.candidate_id, m.version) for m in markers]
        )
        stale = [m for m in markers if persisted.get((m.candidate_id, m.version)) == m.receipt_id]
        await streams.release(client, stale)
        released += len(stale)
        metrics.MARKERS_RELEASED.inc(len(stale))
    if released:
        log.warning("released %d stale queued markers of persisted versions", released)
    return SweepResult(queued, released)


_SUSPECTS_MAX = 100_000  # confirmed one by one; beyond this many, reported unconfirmed


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _candidates_pass(
    client: backend.Redis,
    pool: backend.Pool,
    shards: int,
    snap: ledger.Snapshot,
    report: Report,
) -> list[tuple[CandidateFacts, int]]:
    """Every candidate hash against the snapshot and PostgreSQL; returns the suspects."""
    suspects: list[tuple[CandidateFacts, int]] = []
    async for page in ledger.candidates(client, range(shards)):
        found = await ledger_store.stored(pool, [c.candidate_id for c in page])
        stale: list[streams.QueuedMarker] = []
        for candidate in page:
            facts = found.get(candidate.candidate_id, rules.StoredFacts({}, None))
            verdict = rules.classify(candidate, facts, snap.entries, snap.dead)
            report.add_all(verdict.exceptions)
            report.count("candidates")
            report.count("acknowledged", candidate.counter)
            report.count("persisted", verdict.persisted)
            report.count("purged", len(facts.purged))
            for version in verdict.suspects:
                if len(suspects) < _SUSPECTS_MAX:
                    suspects.append((candidate, version))
                else:
                    entry = snap.entries.get((candidate.candidate_id, version))
                    report.add(
                        rules.missing_item(
                            candidate.candidate_id,
                            candidate.shard,
                            version,
                            entry,
                            candidate.markers,
                        )
                    )
            stale += [
                streams.QueuedMarker(candidate.shard, candidate.candidate_id, receipt, version)
                for receipt, version in verdict.stale_markers
            ]
        await streams.release(client, stale)
        report.repaired["stale_markers_released"] += len(stale)
        metrics.MARKERS_RELEASED.inc(len(stale))
    return suspects


async def _confirm(
    client: backend.Redis,
    pool: backend.Pool,
    shards: int,
    snap: ledger.Snapshot,
    suspects: list[tuple[CandidateFacts, int]],
    report: Report,
) -> None:
    """Read what arrived since the snapshot, then PostgreSQL again: a suspect still in neither
    is missing. (An entry added after the snapshot and persisted and trimmed before the tail was
    read is in PostgreSQL by then: the COMMIT comes before the acknowledgement and the trim.)"""
    if not suspects:
        return
    newer = await ledger.tail(client, shards, snap, _now_ms())
    ids = sorted({c.candidate_id for c, _ in suspects})
    found: dict[int, rules.StoredFacts] = {}
    for start in range(0, len(ids), 2000):
        found.update(await ledger_store.stored(pool, ids[start : start + 2000]))
    for candidate, version in suspects:
        key = (candidate.candidate_id, version)
        facts = found.get(candidate.candidate_id)
        if facts is not None and (version in facts.versions or version in facts.purged):
            report.count("persisted")
            continue
        if key in newer.dead:
            report.add({"kind": "dead_lettered", **rules.dead_item(newer.dead[key])})
            continue
        entry = newer.entries.get(key)
        if entry is not None:
            report.add({"kind": "queued", **rules.queued_item(*key, entry)})
            continue
        report.add(
            rules.missing_item(
                candidate.candidate_id,
                candidate.shard,
                version,
                snap.entries.get(key),
                candidate.markers,
            )
        )


async def _current_rows_pass(
    client: backend.Redis, pool: backend.Pool, settings: Settings, report: Report
) -> None:
    """Every current row against its candidate's counter, read after the row: a counter lower
    than the row's version (or none) means PostgreSQL holds a version Redis never acknowledged."""
    async for rows in ledger_store.current_rows(pool):
        keys = [(settings.shard_of(cid), cid) for cid, _ in rows]
        counters = await ledger.counters(client, keys)
        report.count("current_rows", len(rows))
        for (shard, cid), (_, version), counter in zip(keys, rows, counters, strict=True):
            if counter is None or counter < version:
                report.add(rules.ahead_item(cid, shard, version, counter))


async def reconcile(
    client: backend.Redis,
    pool: backend.Pool,
    settings: Settings,
    *,
    max_queued_age: float = 300.0,
    sample: int = 100,
) -> dict[str, Any]:
    """The whole proof; returns the report (`engine.domain.reconciliation.Report.to_json`),
    kept in Redis for `/metrics` and `GET /api/v1/ops/reconcile`."""
    started, at = time.monotonic(), datetime.now(UTC)
    shards = settings.stream_shards
    report = Report(max_queued_age=max_queued_age, sample=sample)
    snap = await ledger.snapshot(client, shards, _now_ms())
    report.count("stream_entries", len(snap.entries))
    report.count("dead_letters", len(snap.dead_letters))
    for fact in snap.dead_letters:
        report.add({"kind": "dead_lettered", **rules.dead_item(fact)})
    suspects = await _candidates_pass(client, pool, shards, snap, report)
    await _confirm(client, pool, shards, snap, suspects, report)
    await _current_rows_pass(client, pool, settings, report)
    summary = report.to_json(
        at=at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        duration=time.monotonic() - started,
    )
    await ledger.save_report(client, orjson.dumps(summary))
    if summary["failing"]:
        log.warning(
            "reconcile: %d exception(s) fail the gate: %s", summary["failing"], summary["counts"]
        )
    return summary


async def last_report(client: backend.Redis) -> dict[str, Any] | None:
    """The last run's report, whoever ran it (a command or the ops endpoint)."""
    raw = await ledger.last_report(client)
    return None if raw is None else dict(orjson.loads(raw))


def audit_detail(summary: dict[str, Any]) -> dict[str, Any]:
    """What the audit row of a run keeps: the verdict and the counts (no exception list)."""
    return {
        "ok": summary["ok"],
        "counts": summary["counts"],
        "scanned": summary["scanned"],
        "duration_seconds": summary["duration_seconds"],
    }


_RUN_LOCK_SECONDS = 3600
_background: set[asyncio.Task[None]] = set()


class AlreadyRunning(Exception):
    """Another reconciliation is under way (one at a time: each reads every hash and row)."""


async def start(
    client: backend.Redis,
    pool: backend.Pool,
    settings: Settings,
    *,
    max_queued_age: float,
    on_done: Any = None,
) -> str:
    """Start a run in this process's background, one at a time across the deployment; returns
    the run's id. Its report replaces the last one in Redis when it ends.

    Raises:
        AlreadyRunning: a run (from any process or command) holds the lock.
    """
    run_id = secrets.token_hex(8)
    if not await ledger.claim_run(client, run_id, _RUN_LOCK_SECONDS):
        raise AlreadyRunning()

    async def run() -> None:
        try:
            summary = await reconcile(client, pool, settings, max_queued_age=max_queued_age)
            if on_done is not None:
                await on_done(summary)
        except backend.BACKEND_ERRORS as exc:
            log.warning("reconcile run %s failed: %s", run_id, type(exc).__name__)
        finally:
            await ledger.release_run(client, run_id)

    task = asyncio.create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return run_id


async def state(client: backend.Redis) -> dict[str, Any]:
    """The last report and whether a run is under way (GET /api/v1/ops/reconcile)."""
    return {"running": await ledger.running(client) is not None, "last": await last_report(client)}
