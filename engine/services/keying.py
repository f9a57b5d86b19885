"""A unit keys its candidates' paper forms: one at a time, or a CSV/XLSX file of many.

Owns issue 13 item 6 once the caller is known. A keyed form takes the online submission's own
path: `validate_registration`, an Idempotency-Key (`paper_forms.paper_key`, derived from the unit,
the candidate and the form, so keying it again replays), `candidates.enqueue` (admission and the
durable enqueue of the streams), then the writers. A file is checked whole first: with any bad row
nothing is enqueued, unless the unit chose to send the good rows only. A file runs as a background
task of the API worker that took it, its progress in `keying_jobs` for any worker to answer the
poll. Before enqueueing, versions PostgreSQL already holds for the same key are skipped, so a
re-upload creates no version even after Redis has forgotten the key. Audited like the desk.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from engine.adapters import review_store, support_store
from engine.adapters.streams import Receipt
from engine.domain import paper_forms
from engine.domain.calendar import CandidateWindow
from engine.domain.paper_forms import Row, TableError
from engine.domain.registration import CandidateContext, validate_registration
from engine.errors import (
    ExamregError,
    FieldError,
    InvalidRegistration,
    InvalidRequest,
    NotFound,
    Overloaded,
)
from engine.services import candidates
from engine.services.container import Services
from engine.services.support_desk import Desk, audit_refusal, invalid
from engine.services.unit_review import unit_of
from engine.settings import VIETNAM

log = logging.getLogger("examreg.keying")

VALIDATE_CHUNK: Final = 500  # rows validated between two yields to the event loop
# Submissions in flight at once, one pipeline per chunk: short enough that online submissions on
# the same Valkey never wait long behind a file.
ENQUEUE_CHUNK: Final = 256
OVERLOAD_RETRIES: Final = 30  # a file waits out a full backlog this many times, then fails
ERRORS_KEPT: Final = 2_000  # bad rows listed in the job (all are counted)
NOT_IN_UNIT: Final = (
    "Không có thí sinh với số định danh này trong danh sách của đơn vị.",
    "No candidate of this unit has this national ID.",
)


@dataclass(frozen=True, slots=True)
class Keyed:
    """One validated paper form, ready to enqueue."""

    line: int
    candidate_id: int
    key: str
    form: dict[str, Any]


def _today() -> Any:
    return datetime.now(VIETNAM).date()


def _check(
    svc: Services,
    school: tuple[str, str],
    roster: dict[str, int],
    body: Any,
    line: int,
) -> Keyed | list[FieldError]:
    """One paper form through the online form's validation, plus "is it this unit's
    candidate"; the form and its key, or every field error."""
    national_id = body.get("national_id") if isinstance(body, dict) else None
    known = isinstance(national_id, str) and national_id in roster
    errors: list[FieldError] = []
    form: dict[str, Any] | None = None
    context = CandidateContext(
        national_id=national_id if known and isinstance(national_id, str) else "", today=_today()
    )
    try:
        form = validate_registration(body, context, svc.catalog, svc.rules)
    except InvalidRegistration as exc:
        errors.extend(e for e in exc.errors if not (e.code == "mismatch_roster" and not known))
    if (
        not known
        and isinstance(national_id, str)
        and not any(e.field == "national_id" for e in errors)
    ):
        errors.insert(0, FieldError("national_id", "not_in_unit", *NOT_IN_UNIT))
    if errors or form is None:
        return errors
    assert isinstance(national_id, str)
    key = paper_forms.paper_key(school, national_id, form)
    return Keyed(line, roster[national_id], key, form)


async def _enqueue(svc: Services, keyed: Keyed, cw: CandidateWindow) -> Receipt:
    """The online path's enqueue, waiting out a full backlog (Retry-After) a bounded number of
    times: a file is not a person who can press retry."""
    for attempt in range(OVERLOAD_RETRIES + 1):
        try:
            receipt = await candidates.enqueue(svc, keyed.candidate_id, keyed.key, keyed.form, cw)
        except Overloaded as exc:
            candidates.count_refusal(exc)
            if attempt == OVERLOAD_RETRIES:
                raise
            await asyncio.sleep(min(float(exc.retry_after or 1), 5.0))
            continue
        candidates.count_receipt(receipt)
        return receipt
    raise AssertionError("unreachable")


async def key_one(desk: Desk, body: Any) -> dict[str, Any]:
    """One paper form: validated, keyed and enqueued like an online submission; audited.

    Returns:
        The receipt (`receipt_id`, `version`, …) and `replayed`: true when this very form was
        already recorded (no new version).

    Raises:
        Forbidden, WindowClosed, InvalidRegistration, Overloaded, Unavailable.
    """
    school = unit_of(desk)
    svc = desk.svc
    cw = candidates.unit_window(svc, school)
    national_id = body.get("national_id") if isinstance(body, dict) else None
    async with svc.pool.acquire() as conn:
        roster = (
            await review_store.unit_roster(conn, school, [national_id])
            if isinstance(national_id, str)
            else {}
        )
    checked = _check(svc, school, roster, body, 1)
    if not isinstance(checked, Keyed):
        exc = InvalidRegistration(errors=tuple(checked))
        candidates.count_refusal(exc)
        known = roster.get(national_id) if isinstance(national_id, str) else None
        await audit_refusal(desk, "keying_submit", known, None, {"outcome": "invalid"})
        raise exc
    async with svc.pool.acquire() as conn:
        recorded = await review_store.recorded_requests(conn, [(checked.candidate_id, checked.key)])
    version = recorded.get((checked.candidate_id, checked.key))
    if version is not None:
        result: dict[str, Any] = {"version": version, "replayed": True, "receipt_id": None}
    else:
        receipt = await _enqueue(svc, checked, cw)
        result = {**receipt.to_json(), "replayed": receipt.replayed}
    async with svc.pool.acquire() as conn:
        await _audit_keyed(desk, conn, checked.candidate_id, result)
    return result


async def _audit_keyed(desk: Desk, conn: Any, candidate_id: int, result: dict[str, Any]) -> None:
    await support_store.audit(
        conn,
        staff_id=desk.staff.staff_id,
        role=desk.staff.role,
        action="keying_submit",
        candidate_id=candidate_id,
        reason=None,
        client_addr=desk.address,
        detail={"outcome": "ok", "version": result["version"], "replayed": result["replayed"]},
    )


# -- files ---------------------------------------------------------------------------------------


async def start_file(desk: Desk, file_name: str, data: bytes, good_only: bool) -> str:
    """Take a keyed file and start checking it in the background; its job ID for the progress
    page. Audited.

    Raises:
        Forbidden, WindowClosed; InvalidRequest: an empty file or one that is not CSV/XLSX.
    """
    school = unit_of(desk)
    cw = candidates.unit_window(desk.svc, school)
    name = "".join(c for c in file_name if c.isprintable())[-200:] or "upload"
    try:
        if not data.strip():
            raise TableError("empty file")
        kind = paper_forms.kind_of(name, data)
    except TableError as exc:
        await audit_refusal(desk, "keying_upload", None, None, {"outcome": "unreadable"})
        raise invalid(
            "file",
            "unreadable_file",
            f"Không đọc được tệp: {exc}.",
            f"Cannot read the file: {exc}.",
        ) from None
    job_id = secrets.token_hex(16)
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        await review_store.create_job(
            conn,
            job_id=job_id,
            staff_id=desk.staff.staff_id,
            school=school,
            file_name=name,
            good_only=good_only,
        )
        await _audit_job(desk, conn, "keying_upload", job_id, bytes=len(data), good_only=good_only)
    task = asyncio.create_task(_run_file(desk, job_id, school, data, kind, good_only, cw))
    desk.svc._tasks.append(task)
    task.add_done_callback(desk.svc._tasks.remove)
    return job_id


async def _audit_job(desk: Desk, conn: Any, action: str, job_id: str, **detail: Any) -> None:
    await support_store.audit(
        conn,
        staff_id=desk.staff.staff_id,
        role=desk.staff.role,
        action=action,
        candidate_id=None,
        reason=None,
        client_addr=desk.address,
        detail={"job_id": job_id, **detail},
    )


def _row_errors(line: int, errors: Sequence[FieldError]) -> dict[str, Any]:
    return {
        "line": line,
        "errors": [
            {"field": e.field, "code": e.code, "message": e.message, "message_en": e.message_en}
            for e in errors
        ],
    }


async def _update(svc: Services, job_id: str, **fields: Any) -> None:
    async with svc.pool.acquire() as conn:
        await review_store.update_job(conn, job_id, **fields)


async def _validate_rows(
    desk: Desk, job_id: str, school: tuple[str, str], rows: list[Row]
) -> tuple[list[Keyed], list[dict[str, Any]], int]:
    svc = desk.svc
    national_ids = sorted({r.cells.get("national_id", "").strip() for r in rows} - {""})
    async with svc.pool.acquire() as conn:
        roster = await review_store.unit_roster(conn, school, national_ids)
    good: list[Keyed] = []
    bad: list[dict[str, Any]] = []
    bad_count = 0
    for start in range(0, len(rows), VALIDATE_CHUNK):
        for row in rows[start : start + VALIDATE_CHUNK]:
            checked = _check(svc, school, roster, paper_forms.row_body(row.cells), row.line)
            if isinstance(checked, Keyed):
                good.append(checked)
                continue
            bad_count += 1
            candidates.count_refusal(InvalidRegistration(errors=tuple(checked)))
            if len(bad) < ERRORS_KEPT:
                bad.append(_row_errors(row.line, checked))
        await _update(svc, job_id, processed=min(start + VALIDATE_CHUNK, len(rows)))
    return good, bad, bad_count


async def _enqueue_rows(
    desk: Desk, job_id: str, good: list[Keyed], cw: CandidateWindow
) -> tuple[int, int]:
    svc = desk.svc
    enqueued = replayed = 0
    await _update(svc, job_id, state="enqueuing", processed=0)
    for start in range(0, len(good), ENQUEUE_CHUNK):
        chunk = good[start : start + ENQUEUE_CHUNK]
        async with svc.pool.acquire() as conn:
            recorded = await review_store.recorded_requests(
                conn, [(k.candidate_id, k.key) for k in chunk]
            )
        fresh = [k for k in chunk if (k.candidate_id, k.key) not in recorded]
        replayed += len(chunk) - len(fresh)
        receipts = await asyncio.gather(*(_enqueue(svc, k, cw) for k in fresh))
        for receipt in receipts:
            if receipt.replayed:
                replayed += 1
            else:
                enqueued += 1
        await _update(
            svc, job_id, processed=start + len(chunk), enqueued=enqueued, replayed=replayed
        )
    return enqueued, replayed


async def _run_file(
    desk: Desk,
    job_id: str,
    school: tuple[str, str],
    data: bytes,
    kind: paper_forms.FileKind,
    good_only: bool,
    cw: CandidateWindow,
) -> None:
    svc = desk.svc
    try:
        try:
            header, rows = await asyncio.to_thread(
                paper_forms.read_table, data, kind, svc.settings.keying_max_rows
            )
        except TableError as exc:
            await _refuse(desk, job_id, [_file_error("unreadable_file", str(exc))])
            return
        unknown = paper_forms.unknown_columns(header)
        if unknown or "national_id" not in header:
            what = ", ".join(unknown) if unknown else "national_id"
            code = "unknown_columns" if unknown else "missing_columns"
            await _refuse(desk, job_id, [_file_error(code, what)])
            return
        await _update(svc, job_id, total=len(rows))
        good, bad, bad_count = await _validate_rows(desk, job_id, school, rows)
        if bad_count and not good_only:
            await _refuse(desk, job_id, bad, bad_count)
            return
        enqueued, replayed = await _enqueue_rows(desk, job_id, good, cw)
        async with svc.pool.acquire() as conn, conn.transaction():
            await review_store.update_job(conn, job_id, state="done", bad=bad_count, errors=bad)
            await _audit_job(
                desk,
                conn,
                "keying_file",
                job_id,
                outcome="ok",
                rows=len(rows),
                enqueued=enqueued,
                replayed=replayed,
                bad=bad_count,
                keyed=[k.candidate_id for k in good],
            )
    except asyncio.CancelledError:
        await asyncio.shield(_update(svc, job_id, state="failed"))
        raise
    except ExamregError as exc:  # Redis or PostgreSQL gone, or a backlog that never drained
        log.warning("keyed file %s stopped: %s", job_id, exc.code)
        await _mark_failed(svc, job_id)
    except Exception:  # a background task has no caller to raise to: log it, show it failed
        log.exception("keyed file %s failed", job_id)
        await _mark_failed(svc, job_id)


async def _mark_failed(svc: Services, job_id: str) -> None:
    """The job shows "interrupted"; re-uploading the file is safe (it replays what was sent)."""
    try:
        await _update(svc, job_id, state="failed")
    except Exception:  # the database is what failed: the log line above already says so
        log.warning("keyed file %s: could not record the failure", job_id)


def _file_error(code: str, text: str) -> dict[str, Any]:
    error = FieldError("file", code, f"Tệp không dùng được: {text}.", f"Unusable file: {text}.")
    return _row_errors(1, [error])


async def _refuse(
    desk: Desk, job_id: str, errors: list[dict[str, Any]], bad: int | None = None
) -> None:
    async with desk.svc.pool.acquire() as conn, conn.transaction():
        await review_store.update_job(
            conn, job_id, state="refused", bad=len(errors) if bad is None else bad, errors=errors
        )
        await _audit_job(desk, conn, "keying_file", job_id, outcome="refused", bad=bad)


async def job(desk: Desk, job_id: str) -> dict[str, Any]:
    """A keyed file's progress, for its unit only (another unit's job looks missing).

    Raises:
        Forbidden, InvalidRequest (a malformed ID), NotFound.
    """
    school = unit_of(desk)
    if len(job_id) != 32 or not all(c in "0123456789abcdef" for c in job_id):
        raise InvalidRequest(
            errors=(FieldError("job_id", "invalid_format", "Mã không hợp lệ.", "Invalid ID."),)
        )
    async with desk.svc.pool.acquire() as conn:
        row = await review_store.read_job(conn, job_id)
    if row is None or (row["province_code"], row["school_code"]) != school:
        raise NotFound()
    return {
        "job_id": job_id,
        "file_name": row["file_name"],
        "state": row["state"],
        "good_only": row["good_only"],
        "total": row["total"],
        "processed": row["processed"],
        "enqueued": row["enqueued"],
        "replayed": row["replayed"],
        "bad": row["bad"],
        "errors": row["errors"],
        "finished": row["state"] in ("done", "refused", "failed"),
    }
