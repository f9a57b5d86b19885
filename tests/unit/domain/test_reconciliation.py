"""The pure rules of reconciliation: each acknowledged version's fate, the current row, the
report's bounded sample and its words."""

from __future__ import annotations

from engine.domain.reconciliation import (
    CandidateFacts,
    DeadFact,
    Report,
    StoredFacts,
    StreamFact,
    classify,
    render,
)

CID = 42


def _candidate(counter: int, **markers: int) -> CandidateFacts:
    return CandidateFacts(CID, 2, counter, markers)


def test_a_fully_stored_candidate_has_no_exception() -> None:
    verdict = classify(_candidate(2), StoredFacts({1: "A", 2: "B"}, 2), {}, {})
    assert (verdict.exceptions, verdict.suspects, verdict.persisted) == ([], [], 2)


def test_a_queued_version_is_queued_and_the_older_current_row_is_no_mismatch() -> None:
    queued = {(CID, 2): StreamFact(2, "5-0", "B", "pending", 12.5, "w1", 2)}
    verdict = classify(_candidate(2, B=2), StoredFacts({1: "A"}, 1), queued, {})
    [item] = verdict.exceptions
    assert (item["kind"], item["version"], item["consumer"], item["age_seconds"]) == (
        "queued",
        2,
        "w1",
        12.5,
    )
    assert verdict.suspects == []


def test_an_acknowledged_entry_without_its_row_and_an_absent_one_are_suspects() -> None:
    acked = {(CID, 1): StreamFact(2, "5-0", "A", "acknowledged", 1.0)}
    verdict = classify(_candidate(2), StoredFacts({}, None), acked, {})
    assert verdict.suspects == [1, 2]
    assert verdict.exceptions == []  # missing ones are confirmed by the caller first


def test_dead_and_voided_versions_are_accounted_for_elsewhere() -> None:
    dead = {(CID, 3): DeadFact(2, "9-0", CID, 3, "C", "23514: x", 5.0)}
    stored = StoredFacts({2: "B"}, 2, purged=frozenset({1}))
    verdict = classify(_candidate(3), stored, {}, dead)
    assert (verdict.exceptions, verdict.suspects) == ([], [])


def test_a_current_row_older_than_the_highest_stored_version_is_a_mismatch() -> None:
    verdict = classify(_candidate(3), StoredFacts({1: "A", 2: "B", 3: "C"}, 2), {}, {})
    [item] = verdict.exceptions
    assert (item["kind"], item["version"], item["current_version"]) == ("version_mismatch", 3, 2)


def test_everything_voided_expects_no_current_row() -> None:
    stored = StoredFacts({}, None, purged=frozenset({1, 2}))
    assert classify(_candidate(2), stored, {}, {}).exceptions == []


def test_markers_of_stored_versions_are_stale_and_others_are_kept() -> None:
    verdict = classify(_candidate(2, A=1, B=2), StoredFacts({1: "A"}, 1), {}, {})
    assert verdict.stale_markers == [("A", 1)]


def test_the_report_keeps_counts_of_all_and_a_sample_with_the_oldest_queued() -> None:
    report = Report(max_queued_age=100, sample=2)
    for age in (5, 50, 500, 7, 900):
        report.add({"kind": "queued", "candidate_id": age, "version": 1, "age_seconds": age})
    for n in range(5):
        report.add({"kind": "missing", "candidate_id": n, "version": 1})
    assert report.counts["queued"] == 3 and report.counts["queued_over_limit"] == 2
    assert report.failing == 7
    shown = report.exceptions()
    assert [i["age_seconds"] for i in shown["queued_over_limit"]] == [900, 500]
    assert [i["age_seconds"] for i in shown["queued"]] == [50, 7]
    assert len(shown["missing"]) == 2
    summary = report.to_json(at="2026-12-05T10:00:00Z", duration=1.5)
    assert summary["ok"] is False
    text = render(summary)
    assert "NOT OK: 7 exception(s)" in text and "… and 3 more" in text


def test_only_young_queued_versions_pass() -> None:
    report = Report(max_queued_age=60)
    report.add({"kind": "queued", "candidate_id": 1, "version": 1, "age_seconds": 3})
    summary = report.to_json(at="t", duration=0.1)
    assert summary["ok"] and "OK: every acknowledged version" in render(summary)
