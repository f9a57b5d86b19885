"""What a candidate can do, without a request: log in, change a password, submit, read back.

Owns the submission flow (window → validation → admission → durable enqueue, counted in metrics),
which the JSON endpoint and the web form both call, so both reach the queue by one path; the
read-your-writes lookup of the newest accepted version (Redis while queued, else PostgreSQL); a
receipt's status, `needs_attention` when the writer dead-lettered it (issue 12: never `queued`
forever); the candidate's roster profile; and their account lookup and password setter for
`engine.services.accounts`. It must not read a request.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from engine.adapters import dead_letters, metrics, store, streams
from engine.adapters.sessions import (
    Session,
    candidate_claim,
    candidate_session_key,
    claimed_unit,
    token_digest,
)
from engine.adapters.streams import Receipt, SessionCheck, SessionUnsettled
from engine.domain.calendar import CandidateWindow, Unit
from engine.domain.registration import CandidateContext, validate_registration
from engine.domain.registration_messages import message
from engine.errors import (
    ExamregError,
    FieldError,
    InvalidRegistration,
    Overloaded,
    PasswordChangeRequired,
    Unauthenticated,
    WindowClosed,
)
from engine.services import activity, window
from engine.services.accounts import Account, NewSession, new_password_hash, replace_sessions
from engine.services.container import Services
from engine.settings import VIETNAM

IDEMPOTENCY_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RECEIPT_ID: Final = re.compile(r"^[0-9A-F]{20}$")
_LOGIN: Final = re.compile(r"^[0-9A-Za-z]{6,20}$")
# What a candidate reads when PostgreSQL refused an accepted version and the writer gave up on it.
NOT_STORED: Final = (
    "Phiếu đăng ký phiên bản {version} (mã biên nhận {receipt_id}) đã được tiếp nhận và không bị "
    "mất, nhưng chưa lưu được vào cơ sở dữ liệu. Bộ phận kỹ thuật đã được báo để xử lý. Vui lòng "
    "liên hệ trường hoặc bộ phận hỗ trợ thí sinh và đọc mã biên nhận này. Trong thời gian đăng "
    "ký, bạn cũng có thể gửi lại phiếu: nếu có thông tin cần sửa, hệ thống sẽ chỉ rõ.",
    "Version {version} of your form (receipt {receipt_id}) was accepted and is not lost, but it "
    "could not be stored in the database yet; the technical team has been alerted. Please "
    "contact your school or the candidate support desk and quote this receipt ID. While "
    "registration is open you may also submit the form again: anything to correct will be shown.",
)


async def candidate_account(svc: Services, login_id: str) -> Account | None:
    """The login account of a roster candidate (the 12-digit ID), or None."""
    if not _LOGIN.match(login_id):
        return None
    record = await store.candidate_login(svc.pool, login_id)
    if record is None:
        return None
    return Account(
        record.candidate_id, record.password_hash, record.must_change_password, unit=record.unit
    )


async def change_password(
    svc: Services, session: Session, address: str, current: str, new: str
) -> NewSession:
    """Apply the policy, verify the current password (throttled like a login from `address`),
    store the new hash (API and web page); then every session of the account ends and the caller
    goes on with the new one returned.

    Raises:
        WeakPassword: the new one breaks the policy.
        TooManyAttempts: too many wrong current passwords or logins for now (Retry-After).
        InvalidCredentials: the current password is wrong.
    """
    current_hash = await store.candidate_password_hash(svc.pool, session.subject)
    new_hash = await new_password_hash(svc, session, address, current_hash, current, new)
    await store.set_candidate_password(svc.pool, session.subject, new_hash)
    await activity.record_account(
        svc.pool, session.kind, session.subject, "password_change", address
    )
    return await replace_sessions(svc, session)


async def must_change_password(svc: Services, session: Session) -> bool:
    """Whether the session's candidate is still on an issued (or reset) password.

    The flag rides in the session (set at login; see `engine.services.accounts`), so the hot
    path reads no roster row. A session opened before the flag was kept has none: the roster
    answers for it.
    """
    flag = session.scope.get("must_change")
    if isinstance(flag, bool):
        return flag
    return bool(await store.candidate_must_change_password(svc.pool, session.subject))


async def require_password_changed(svc: Services, session: Session) -> None:
    """Refuse anything but a password change or a logout until the issued password is replaced.

    Raises:
        PasswordChangeRequired: the candidate has not replaced it yet.
    """
    if await must_change_password(svc, session):
        raise PasswordChangeRequired()


async def profile(svc: Services, candidate_id: int) -> dict[str, Any]:
    profile = await store.candidate_profile(svc.pool, candidate_id)
    if profile is None:  # the account was removed from the roster after login
        raise Unauthenticated()
    return profile


async def open_window(svc: Services, session: Session, key: str) -> CandidateWindow:
    """The candidate's window (their unit's, a reopen's), if it is open now, or if `key` was
    accepted before it closed: a retry whose first answer was lost gets its original 202
    (Redis answers the replay before it judges the deadline).

    Raises:
        WindowClosed: before the trial or the official window, or after its close (409).
    """
    cw = await window.candidate_window(svc.calendar, svc.pool, session)
    if cw.phase == "closed" and cw.deadline is not None:
        shard = svc.settings.shard_of(session.subject)
        if await streams.key_accepted(svc.redis, shard, session.subject, key):
            return cw
    window.refuse_unless_open(cw)
    return cw


def _deadline_ms(cw: CandidateWindow) -> int:
    deadline = cw.deadline
    return 0 if deadline is None else int(deadline.timestamp() * 1000)


def unit_window(svc: Services, unit: tuple[str, str]) -> CandidateWindow:
    """The window of a registration unit (its own, its province's or the nation's; a reopen
    naming the unit or its province counts), for the paper forms its staff key.

    Raises:
        WindowClosed: the unit's window is not open now (409).
    """
    cw = svc.calendar.current().resolve(datetime.now(UTC), None, Unit(*unit))
    window.refuse_unless_open(cw)
    return cw


def valid_idempotency_key(key: str) -> bool:
    return IDEMPOTENCY_KEY.match(key) is not None


async def submit(svc: Services, session: Session, key: str, body: Any) -> Receipt:
    """Window → validation → admission → durable enqueue of one decoded body; counted in metrics.

    Raises:
        PasswordChangeRequired, WindowClosed, InvalidRegistration, IdempotencyKeyReused,
        Overloaded, Unavailable.
    """
    try:
        await require_password_changed(svc, session)
        cw = await open_window(svc, session, key)
        # The session holds the roster's national ID, so the hot path needs no roster query.
        context = CandidateContext(national_id=session.login, today=datetime.now(VIETNAM).date())
        form = validate_registration(body, context, svc.catalog, svc.rules)
        await check_photo(svc, form)
        receipt = await enqueue(svc, session.subject, key, form, cw)
    except ExamregError as exc:
        count_refusal(exc)
        raise
    count_receipt(receipt)
    return receipt


def fast_path(token: str) -> bool:
    """Whether a token's submission can take one round trip (`submit_by_token`): a candidate
    token naming its shard. One opened before the shard-tagged layout takes `submit`'s path."""
    return candidate_claim(token) is not None


async def session_of(svc: Services, token: str) -> Session:
    """The live candidate session of a token, past the forced password change.

    Raises:
        Unauthenticated, PasswordChangeRequired.
    """
    session = await svc.sessions.get(token, "candidate")
    if session is None:
        raise Unauthenticated()
    await require_password_changed(svc, session)
    return session


async def submit_by_token(svc: Services, token: str, key: str, body: Any) -> Receipt:
    """`submit` in one Redis round trip: the session is checked by the enqueue's own server-side
    call (live, the candidate's, within its lifetimes, password changed, opened with the form's
    national ID and for the unit the token names), which also slides its idle expiry. Only for
    tokens that pass `fast_path`.

    The window is the one of the candidate and the unit the token claims; the server-side call
    refuses the session unless it was opened for that unit, so a forged claim cannot borrow a
    neighbour's reopen. Whatever the server-side check cannot settle alone, a closed window (a
    replay of a key accepted before the close still gets its 202) and every refused form go by
    `submit`'s path (the session read first): a refusal answers exactly as there, 401 and 403
    before 409 and 422, with every field's error. Only accepted submissions, and replays while
    the window is open, are one round trip.
    """
    claim = candidate_claim(token)
    assert claim is not None, "submit_by_token needs a token that passes fast_path"
    try:
        receipt = await _enqueue_checked(svc, token, claim, key, body)
    except (SessionUnsettled, InvalidRegistration, WindowClosed):
        return await submit(svc, await session_of(svc, token), key, body)
    except ExamregError as exc:
        count_refusal(exc)
        raise
    count_receipt(receipt)
    return receipt


def _claimed_window(svc: Services, token: str, candidate_id: int) -> CandidateWindow:
    """The window of the candidate and unit a token claims (verified by the enqueue's call)."""
    unit = window.unit_of_scope({"unit": claimed_unit(token) or ""})
    return svc.calendar.current().resolve(datetime.now(UTC), candidate_id, unit)


def claimed_window_open(svc: Services, token: str) -> bool:
    """Whether the window a `fast_path` token claims is open now."""
    claim = candidate_claim(token)
    return claim is not None and _claimed_window(svc, token, claim).phase in ("trial", "official")


async def _enqueue_checked(
    svc: Services, token: str, candidate_id: int, key: str, body: Any
) -> Receipt:
    unit = claimed_unit(token)
    cw = _claimed_window(svc, token, candidate_id)
    window.refuse_unless_open(cw)
    context = CandidateContext(national_id=None, today=datetime.now(VIETNAM).date())
    form = validate_registration(body, context, svc.catalog, svc.rules)
    await check_photo(svc, form)
    _refuse_when_memory_full(svc)
    shard = svc.settings.shard_of(candidate_id)
    check = SessionCheck(
        key=candidate_session_key(shard, token_digest(token)),
        absolute_seconds=svc.sessions.absolute_seconds,
        idle_seconds=svc.sessions.idle_seconds,
        national_id=str(form["national_id"]),
        unit=unit or "",
    )
    return await svc.enqueuer.submit(
        streams.Submission(
            candidate_id=candidate_id,
            shard=shard,
            idempotency_key=key,
            form=form,
            phase="trial" if cw.phase == "trial" else "official",
            deadline_ms=_deadline_ms(cw),
            session=check,
        )
    )


async def enqueue(
    svc: Services, candidate_id: int, key: str, form: dict[str, Any], cw: CandidateWindow
) -> Receipt:
    """Admission and the durable enqueue of a validated form: the one way into the streams, for
    an online submission and a unit's keyed paper form alike (`engine.services.keying`).
    Redis judges the window's deadline in the enqueue itself: a request that passed the window
    check a moment before the close is still refused after it (the lock).

    Raises:
        IdempotencyKeyReused, Overloaded, Unavailable, WindowClosed.
    """
    _refuse_when_memory_full(svc)
    submission = streams.Submission(
        candidate_id=candidate_id,
        shard=svc.settings.shard_of(candidate_id),
        idempotency_key=key,
        form=form,
        phase="trial" if cw.phase == "trial" else "official",
        deadline_ms=_deadline_ms(cw),
    )
    try:
        return await svc.enqueuer.submit(submission)
    except WindowClosed:  # Redis judged the deadline passed: say when, in words
        window.refuse_unless_open(replace(cw, phase="closed"))
        raise


def _refuse_when_memory_full(svc: Services) -> None:
    if svc.memory_shedding:
        raise Overloaded(
            retry_after=svc.sampler.retry_after(None), extra={"reason": "redis_memory"}
        )


def count_receipt(receipt: Receipt) -> None:
    if receipt.replayed:
        metrics.SUBMISSIONS_REPLAYED.inc()
    else:
        metrics.SUBMISSIONS_ACCEPTED.labels(receipt.phase).inc()


async def check_photo(svc: Services, form: dict[str, Any]) -> None:
    """A form's `photo_sha256` must name a photo the store holds (uploaded first).

    Raises:
        InvalidRegistration: `unknown_photo` on `photo_sha256`.
    """
    digest = form.get("photo_sha256")
    if digest is not None and not await svc.photos.exists(digest):
        vi, en = message("unknown_photo")
        raise InvalidRegistration(errors=(FieldError("photo_sha256", "unknown_photo", vi, en),))


def count_refusal(exc: ExamregError) -> None:
    if isinstance(exc, Overloaded):
        metrics.SUBMISSIONS_SHED.labels(str(exc.extra.get("reason", "unknown"))).inc()
    elif not isinstance(exc, Unauthenticated):
        metrics.SUBMISSIONS_REJECTED.labels(exc.code).inc()


def attention(version: int, receipt_id: str) -> dict[str, str]:
    """Why a version needs attention and what to do: `message` in Vietnamese, `message_en`."""
    vi, en = (text.format(version=version, receipt_id=receipt_id) for text in NOT_STORED)
    return {"code": "not_stored", "message": vi, "message_en": en}


async def newest_registration(svc: Services, candidate_id: int) -> dict[str, Any] | None:
    """Read-your-writes: the newest accepted version, from Redis while queued, else PostgreSQL.

    A queued version the writer dead-lettered is `needs_attention`, with an `attention` saying
    what to do, until an operator replays it (`examreg dead-letters replay`).
    """
    shard = svc.settings.shard_of(candidate_id)
    # Redis first, then PostgreSQL: an entry trimmed from Redis is already committed there.
    latest = await streams.latest_record(svc.redis, shard, candidate_id)
    persisted = await store.registration(svc.pool, candidate_id)
    if latest is not None and (persisted is None or latest.version > persisted.version):
        form, dead = await streams.queued_form(svc.redis, shard, candidate_id, latest)
        if form is None and dead is not None:  # acknowledged and trimmed: the dead letter has it
            letter = await dead_letters.read(svc.redis, shard, dead)
            form = None if letter is None else orjson.loads(letter.fields.get("form", "null"))
        if form is not None:
            return _queued(latest, form, dead)
        # Trimmed since the first read, so committed: PostgreSQL answers.
        persisted = await store.registration(svc.pool, candidate_id)
    if persisted is None:
        return None
    return {
        "version": persisted.version,
        "status": "persisted",
        "receipt_id": persisted.receipt_id,
        "phase": persisted.phase,
        "accepted_at": persisted.accepted_at.isoformat(),
        "persisted_at": persisted.persisted_at.isoformat(),
        "form": persisted.form,
    }


def _queued(latest: streams.LatestRecord, form: Any, dead: str | None) -> dict[str, Any]:
    newest: dict[str, Any] = {
        "version": latest.version,
        "status": "queued" if dead is None else "needs_attention",
        "receipt_id": latest.receipt_id,
        "phase": latest.phase,
        "accepted_at": latest.accepted_at,
        "persisted_at": None,
        "form": form,
    }
    if dead is not None:
        newest["attention"] = attention(latest.version, latest.receipt_id)
    return newest


async def receipt_status(
    svc: Services, candidate_id: int, receipt_id: str
) -> dict[str, Any] | None:
    """One of the candidate's receipts, queued, needing attention (dead-lettered) or persisted;
    someone else's is None, like an unknown one. Times are ISO 8601 strings; a queued receipt has
    its phase and time only when it is the newest version (Redis keeps those of the newest queued
    version alone)."""
    if not RECEIPT_ID.match(receipt_id):
        return None
    shard = svc.settings.shard_of(candidate_id)
    version, dead = await streams.queued_receipt(svc.redis, shard, candidate_id, receipt_id)
    if version is not None:
        latest = await streams.latest_record(svc.redis, shard, candidate_id)
        newest = latest if latest is not None and latest.receipt_id == receipt_id else None
        status: dict[str, Any] = {
            "receipt_id": receipt_id,
            "version": version,
            "status": "queued" if dead is None else "needs_attention",
            "phase": newest.phase if newest else None,
            "accepted_at": newest.accepted_at if newest else None,
            "persisted_at": None,
        }
        if dead is not None:
            status["attention"] = attention(version, receipt_id)
        return status
    persisted = await store.receipt(svc.pool, candidate_id, receipt_id)
    if persisted is None:
        return None
    return {
        "receipt_id": receipt_id,
        "version": persisted.version,
        "status": "persisted",
        "phase": persisted.phase,
        "accepted_at": persisted.accepted_at.isoformat(),
        "persisted_at": persisted.persisted_at.isoformat(),
    }
