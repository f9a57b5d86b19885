"""The registration unit's review: its queue, confirming or returning a version, batch printing,
and what the candidate reads of it; the differences between versions for every page.

Owns issue 13 items 4 and 5 once the caller is known. A `school` staff member works on their own
unit only: another unit's candidate looks missing (404), as at the desk. Confirming records who,
when and which version, and is refused (409 `version_changed`) when the candidate has a newer
version than the one the unit looked at, queued or persisted. Every queue read, decision and print
writes an audit row in the same transaction (refusals too), through the desk's audit helper. It
must not read a request: SQL is `engine.adapters.review_store`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from engine.adapters import review_store, streams, support_store
from engine.adapters.review_store import Review
from engine.domain.form_diff import Change, diff_forms, version_diffs
from engine.domain.unit_review import ACTIONS, STATES, review_state
from engine.errors import Forbidden, NotFound, VersionChanged
from engine.services.container import Services
from engine.services.support_desk import (
    Desk,
    audit_refusal,
    check_reason,
    mask_national_id,
    mask_phone,
)

UNIT_ROLES: Final = frozenset({"school"})
# What the console masks in a difference, like the record's current form.
_MASKED: Final = {"national_id": mask_national_id, "phone": mask_phone}


def unit_of(desk: Desk) -> tuple[str, str]:
    """The caller's unit; only a `school` account has one.

    Raises:
        Forbidden: the caller is not a unit's staff member.
    """
    if desk.staff.role not in UNIT_ROLES or desk.staff.school is None:
        raise Forbidden()
    return desk.staff.school


def _review_json(review: Review | None) -> dict[str, Any] | None:
    if review is None:
        return None
    return {
        "version": review.version,
        "action": review.action,
        "reason": review.reason,
        "at": review.at.isoformat(),
        "by": review.staff,
    }


def masked(changes: Sequence[Change]) -> list[dict[str, Any]]:
    """Changes as JSON, national ID and phone masked as the console masks them."""
    out = []
    for change in changes:
        mask = _MASKED.get(change.field)
        if mask is None:
            out.append(change.to_json())
            continue
        before = mask(change.before) if isinstance(change.before, str) else change.before
        after = mask(change.after) if isinstance(change.after, str) else change.after
        out.append({"field": change.field, "before": before, "after": after})
    return out


async def _audit(
    desk: Desk, conn: Any, action: str, candidate_id: int | None, reason: str | None, **detail: Any
) -> None:
    """The desk's audit helper on `conn` (inside the caller's transaction)."""
    await support_store.audit(
        conn,
        staff_id=desk.staff.staff_id,
        role=desk.staff.role,
        action=action,
        candidate_id=candidate_id,
        reason=reason,
        client_addr=desk.address,
        detail=detail,
    )


async def queue(desk: Desk) -> dict[str, list[dict[str, Any]]]:
    """The unit's candidates grouped by review state (`STATES` order), each with its newest
    review; a changed one with its differences from the version last reviewed. Audited."""
    school = unit_of(desk)
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        rows = await review_store.unit_candidates(conn, school)
        states = {}
        for row in rows:
            review: Review | None = row["review"]
            states[row["candidate_id"]] = review_state(
                row["current_version"],
                review.version if review else None,
                review.action if review else None,
            )
        wanted = [
            (row["candidate_id"], row["review"].version)
            for row in rows
            if states[row["candidate_id"]] == "changed"
        ]
        reviewed_forms = await review_store.forms_of(conn, wanted)
        await _audit(
            desk,
            conn,
            "review_queue",
            None,
            None,
            outcome="ok",
            school=list(school),
            shown=[row["candidate_id"] for row in rows],
        )
    groups: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    for row in rows:
        state = states[row["candidate_id"]]
        review = row["review"]
        entry: dict[str, Any] = {
            "candidate_id": row["candidate_id"],
            "national_id": mask_national_id(row["national_id"]),
            "full_name": row["full_name"],
            "date_of_birth": row["date_of_birth"].isoformat(),
            "state": state,
            "current_version": row["current_version"],
            "review": _review_json(review),
        }
        if state == "changed":
            before = reviewed_forms.get((row["candidate_id"], review.version))
            entry["changes"] = masked(diff_forms(before, row["form"])) if before else []
        groups[state].append(entry)
    return groups


async def _newest_version(svc: Services, conn: Any, candidate_id: int) -> int | None:
    """The newest accepted version: persisted (locked until COMMIT) or still queued in Redis."""
    shard = svc.settings.shard_of(candidate_id)
    latest = await streams.latest_record(svc.redis, shard, candidate_id)
    current = await review_store.current_version(conn, candidate_id)
    if current is None:
        return None
    return max(current, latest.version) if latest is not None else current


async def decide(
    desk: Desk, candidate_id: int, version: int, action: str, raw_reason: object = None
) -> dict[str, Any]:
    """Confirm `version` of the candidate, or return it for correction with a reason the
    candidate reads. Audited, refusals included.

    Raises:
        Forbidden: not a unit's staff member.
        InvalidRequest: a return without a usable reason.
        NotFound: no such candidate in the caller's unit, or nothing registered.
        VersionChanged: the candidate's newest version is not `version`.
    """
    school = unit_of(desk)
    if action not in ACTIONS:
        raise NotFound()
    audit_action = f"review_{action}"
    reason = check_reason(raw_reason) if action == "return" else None
    outcome, newest = "ok", None
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        unit = await review_store.candidate_unit(conn, candidate_id)
        if unit == school:
            newest = await _newest_version(desk.svc, conn, candidate_id)
        if unit is None or unit != school:
            outcome = "not_found" if unit is None else "outside_school"
        elif newest is None:
            outcome = "not_registered"
        elif newest != version:
            outcome = "version_changed"
        else:
            at = await review_store.record_review(
                conn,
                candidate_id=candidate_id,
                version=version,
                action=action,
                reason=reason,
                staff_id=desk.staff.staff_id,
            )
            await _audit(
                desk, conn, audit_action, candidate_id, reason, outcome="ok", version=version
            )
    if outcome != "ok":
        known = candidate_id if outcome != "not_found" else None
        await audit_refusal(
            desk, audit_action, known, reason, {"outcome": outcome, "version": version}
        )
        if outcome == "version_changed":
            raise VersionChanged(extra={"version": newest})
        raise NotFound()
    return {
        "candidate_id": candidate_id,
        "version": version,
        "action": action,
        "at": at.isoformat(),
    }


async def print_forms(desk: Desk) -> list[dict[str, Any]]:
    """The unit's registered candidates' current forms for the batch print, with their review
    state, in the queue's order (name). Audited: the print shows personal data in full."""
    school = unit_of(desk)
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        rows = [r for r in await review_store.unit_candidates(conn, school) if r["form"]]
        await _audit(
            desk,
            conn,
            "review_print",
            None,
            None,
            outcome="ok",
            school=list(school),
            shown=[row["candidate_id"] for row in rows],
        )
    printed = []
    for row in rows:
        review = row["review"]
        printed.append(
            {
                "candidate_id": row["candidate_id"],
                "version": row["current_version"],
                "receipt_id": row["receipt_id"],
                "form": row["form"],
                "state": review_state(
                    row["current_version"],
                    review.version if review else None,
                    review.action if review else None,
                ),
                "review": _review_json(review),
            }
        )
    return printed


async def candidate_review(svc: Services, candidate_id: int, version: int | None) -> dict[str, Any]:
    """What the candidate reads of their unit's review of `version` (their newest): the state,
    the version decided on, when, and the reason of a return."""
    async with svc.pool.acquire() as conn:
        review = await review_store.newest_review(conn, candidate_id)
    state = review_state(
        version, review.version if review else None, review.action if review else None
    )
    body: dict[str, Any] = {"state": state}
    if review is not None:
        body.update(
            version=review.version,
            action=review.action,
            at=review.at.isoformat(),
            reason=review.reason if review.action == "return" else None,
        )
    return body


async def version_changes(
    svc: Services,
    candidate_id: int,
    newest: tuple[int, Mapping[str, Any]] | None = None,
    *,
    mask: bool = False,
) -> dict[int, list[dict[str, Any]]]:
    """Each persisted version's changes from the one before it (and `newest`'s, a version still
    queued, from the newest persisted); national ID and phone masked when `mask`."""
    async with svc.pool.acquire() as conn:
        forms: list[tuple[int, Mapping[str, Any]]] = list(
            await review_store.version_forms(conn, candidate_id)
        )
    if newest is not None and all(v != newest[0] for v, _ in forms):
        forms.append(newest)
    diffs = version_diffs(forms)
    return {
        v: (masked(changes) if mask else [c.to_json() for c in changes])
        for v, changes in diffs.items()
    }
