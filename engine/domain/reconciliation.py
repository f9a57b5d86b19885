"""Reconciliation's rules: what an acknowledged version's fate must be, and the report's shape.

Owns the pure half of `examreg reconcile` (issue 14 item 4): given what Redis says about one
candidate (the version counter, which every 202 incremented in the same atomic call as its
XADD, so versions 1..N were all acknowledged; the queued `rcpt:` markers), what the streams
held (entries still queued, dead letters) and what PostgreSQL holds (history rows, the current
row, versions voided by the trial purge), classify each acknowledged version as persisted,
queued, dead-lettered or missing, and the current row as matching the highest acknowledged
version or not. The report keeps counts and a bounded sample of each kind, so memory stays
flat whatever the number of registrations. No IO here: `engine.services.reconciliation`
gathers the facts, page by page.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Kind = Literal["queued", "queued_over_limit", "dead_lettered", "missing", "version_mismatch"]
KINDS: Final[tuple[Kind, ...]] = (
    "queued",
    "queued_over_limit",
    "dead_lettered",
    "missing",
    "version_mismatch",
)
# Kinds that fail the gate: everything but a version still queued for less than the limit.
FAILING: Final[frozenset[Kind]] = frozenset(KINDS) - {"queued"}


@dataclass(frozen=True, slots=True)
class StreamFact:
    """One entry of a shard's stream as the snapshot saw it."""

    shard: int
    stream_id: str
    receipt_id: str
    state: Literal["waiting", "pending", "acknowledged"]  # acknowledged: persisted, not trimmed
    age_seconds: float  # since the 202
    consumer: str | None = None
    deliveries: int = 0

    @property
    def queued(self) -> bool:
        return self.state != "acknowledged"


@dataclass(frozen=True, slots=True)
class DeadFact:
    """One entry of a shard's dead-letter stream."""

    shard: int
    dead_id: str
    candidate_id: int | None
    version: int | None
    receipt_id: str | None
    reason: str
    age_seconds: float


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """What Redis says about one candidate: the counter and the queued markers."""

    candidate_id: int
    shard: int
    counter: int  # highest version ever acknowledged (the hash's `version` field)
    markers: Mapping[str, int]  # receipt → version, still `queued` in Redis


@dataclass(frozen=True, slots=True)
class StoredFacts:
    """What PostgreSQL holds for one candidate."""

    versions: Mapping[int, str]  # version → receipt of every history row
    current: int | None  # the current row's version
    purged: frozenset[int] = frozenset()  # trial versions the purge voided (domain: trial data)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One candidate's exceptions, and the repairs and suspects it leaves to the caller."""

    exceptions: list[dict[str, Any]]
    suspects: list[int]  # versions neither stored nor queued: missing unless a recheck finds them
    stale_markers: list[tuple[str, int]]  # (receipt, version) queued in Redis, already stored
    persisted: int


def queued_item(candidate_id: int, version: int, fact: StreamFact) -> dict[str, Any]:
    return {
        "candidate_id": candidate_id,
        "version": version,
        "receipt_id": fact.receipt_id,
        "shard": fact.shard,
        "stream_id": fact.stream_id,
        "state": fact.state,
        "consumer": fact.consumer,
        "deliveries": fact.deliveries,
        "age_seconds": round(fact.age_seconds, 1),
    }


def dead_item(fact: DeadFact) -> dict[str, Any]:
    return {
        "candidate_id": fact.candidate_id,
        "version": fact.version,
        "receipt_id": fact.receipt_id,
        "shard": fact.shard,
        "dead_letter": f"{fact.shard}:{fact.dead_id}",
        "reason": fact.reason,
        "age_seconds": round(fact.age_seconds, 1),
    }


def classify(
    candidate: CandidateFacts,
    stored: StoredFacts,
    queued: Mapping[tuple[int, int], StreamFact],
    dead: Mapping[tuple[int, int], DeadFact],
) -> Verdict:
    """Every acknowledged version of one candidate, and its current row, against the rules.

    A version is accounted for when PostgreSQL has its history row (or the trial purge voided
    it), when its entry is still queued in the stream, or when it was dead-lettered (dead letters
    are reported once, from their own streams, by the caller). Anything else is a suspect: an
    entry added after the streams were read may be one, so the caller confirms them. The current
    row must be the highest acknowledged version that is not voided, unless that version is
    still queued, dead-lettered or missing (reported as such).
    """
    cid = candidate.candidate_id
    exceptions: list[dict[str, Any]] = []
    suspects: list[int] = []
    persisted = 0
    for version in range(1, candidate.counter + 1):
        if version in stored.versions:
            persisted += 1
            continue
        if version in stored.purged or (cid, version) in dead:
            continue
        fact = queued.get((cid, version))
        if fact is not None and fact.queued:
            exceptions.append({"kind": "queued", **queued_item(cid, version, fact)})
        else:  # not stored, not queued (or acknowledged by a writer without its row)
            suspects.append(version)
    live = [v for v in range(candidate.counter, 0, -1) if v not in stored.purged]
    expected = live[0] if live else None
    if (
        expected is not None
        and expected in stored.versions
        and (stored.current is None or stored.current < expected)
    ):
        exceptions.append(
            {
                "kind": "version_mismatch",
                "candidate_id": cid,
                "version": expected,
                "current_version": stored.current,
                "shard": candidate.shard,
                "detail": "current row older than the highest acknowledged version",
            }
        )
    stale = [
        (receipt, version)
        for receipt, version in candidate.markers.items()
        if stored.versions.get(version) == receipt
    ]
    return Verdict(exceptions, suspects, stale, persisted)


def missing_item(
    candidate_id: int, shard: int, version: int, fact: StreamFact | None, markers: Mapping[str, int]
) -> dict[str, Any]:
    """A version acknowledged (counted by Redis) that is neither stored, queued nor dead."""
    receipt = (
        fact.receipt_id if fact else next((r for r, v in markers.items() if v == version), None)
    )
    return {
        "kind": "missing",
        "candidate_id": candidate_id,
        "version": version,
        "receipt_id": receipt,
        "shard": shard,
        "detail": (
            "acknowledged by a writer but not in the database"
            if fact is not None
            else "acknowledged, not in the stream, not in the database"
        ),
    }


def ahead_item(candidate_id: int, shard: int, current: int, counter: int | None) -> dict[str, Any]:
    """A current row Redis never acknowledged (its counter is lower, or absent)."""
    return {
        "kind": "version_mismatch",
        "candidate_id": candidate_id,
        "version": counter,
        "current_version": current,
        "shard": shard,
        "detail": "current row newer than any version Redis acknowledged",
    }


@dataclass
class Report:
    """Counts of every kind, and a bounded sample of each (the oldest of the queued ones)."""

    max_queued_age: float
    sample: int = 100
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    scanned: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=lambda: {"stale_markers_released": 0})
    _items: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    _oldest: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    _seq: int = 0

    def add(self, item: dict[str, Any]) -> None:
        kind: str = item["kind"]
        if kind == "queued" and item["age_seconds"] >= self.max_queued_age:
            kind = item["kind"] = "queued_over_limit"
        self.counts[kind] += 1
        if kind in ("queued", "queued_over_limit"):
            self._seq += 1
            entry = (float(item["age_seconds"]), self._seq, item)
            if len(self._oldest) < self.sample * 2:
                heapq.heappush(self._oldest, entry)
            else:
                heapq.heappushpop(self._oldest, entry)
        elif len(self._items[kind]) < self.sample:
            self._items[kind].append(item)

    def add_all(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.add(item)

    def count(self, name: str, value: int = 1) -> None:
        self.scanned[name] = self.scanned.get(name, 0) + value

    @property
    def failing(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind in FAILING)

    def exceptions(self) -> dict[str, list[dict[str, Any]]]:
        items = {kind: list(found) for kind, found in self._items.items()}
        for _, _, item in sorted(self._oldest, key=lambda e: (-e[0], e[1])):
            if len(items[item["kind"]]) < self.sample:
                items[item["kind"]].append(item)
        return items

    def to_json(self, *, at: str, duration: float) -> dict[str, Any]:
        return {
            "ok": self.failing == 0,
            "at": at,
            "duration_seconds": round(duration, 3),
            "max_queued_age_seconds": self.max_queued_age,
            "counts": dict(self.counts),
            "failing": self.failing,
            "scanned": dict(self.scanned),
            "repaired": dict(self.repaired),
            "sample_per_kind": self.sample,
            "exceptions": self.exceptions(),
        }


_LABELS: Final = {
    "queued": "still queued (younger than the limit)",
    "queued_over_limit": "still queued, older than the limit",
    "dead_lettered": "dead-lettered",
    "missing": "missing (acknowledged, not queued, not stored)",
    "version_mismatch": "version mismatch (current row)",
}


def _line(item: dict[str, Any]) -> str:
    parts = [f"candidate {item.get('candidate_id')}", f"version {item.get('version')}"]
    for name in ("current_version", "receipt_id", "dead_letter", "stream_id", "state"):
        if item.get(name) is not None:
            parts.append(f"{name.replace('_', ' ')} {item[name]}")
    if "age_seconds" in item:
        parts.append(f"age {item['age_seconds']:.0f} s")
    if item.get("reason"):
        parts.append(f"reason {item['reason']}")
    if item.get("detail"):
        parts.append(str(item["detail"]))
    return "    " + ", ".join(parts)


def render(summary: dict[str, Any]) -> str:
    """The report as an operator reads it (the JSON's figures, in words)."""
    scanned = summary["scanned"]
    verdict = (
        "OK: every acknowledged version is stored or still queued within the limit"
        if summary["ok"]
        else f"NOT OK: {summary['failing']:,} exception(s) fail the gate"
    )
    lines = [
        f"reconcile at {summary['at']} in {summary['duration_seconds']:.1f} s: {verdict}",
        f"  candidates in Redis {scanned.get('candidates', 0):,}, versions acknowledged "
        f"{scanned.get('acknowledged', 0):,}, stored {scanned.get('persisted', 0):,}, "
        f"voided by the trial purge {scanned.get('purged', 0):,}",
        f"  current rows checked {scanned.get('current_rows', 0):,}, stream entries "
        f"{scanned.get('stream_entries', 0):,}, dead letters {scanned.get('dead_letters', 0):,}",
        f"  stale queued markers released: {summary['repaired']['stale_markers_released']:,}",
        f"  queued limit: {summary['max_queued_age_seconds']:.0f} s",
    ]
    for kind in KINDS:
        count = summary["counts"][kind]
        lines.append(f"  {_LABELS[kind]}: {count:,}")
        shown = summary["exceptions"][kind]
        lines += [_line(item) for item in shown]
        if count > len(shown):
            lines.append(f"    … and {count - len(shown):,} more (--json, --sample)")
    return "\n".join(lines) + "\n"
