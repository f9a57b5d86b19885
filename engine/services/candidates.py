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
from datetime import UTC, datetime
from typing import Any, Final

from engine.adapters import dead_letters, metrics, store, streams
from engine.adapters.sessions import Session
from engine.adapters.streams import Receipt
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
    return Account(record.candidate_id, record.password_hash, record.must_change_password)


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


def open_phase(svc: Services) -> str:
    phase = svc.settings.window.phase(datetime.now(UTC))
    if phase not in ("trial", "official"):
        raise WindowClosed(extra={"phase": phase})
    return phase


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
        phase = open_phase(svc)
        # The session holds the roster's national ID, so the hot path needs no roster query.
        context = CandidateContext(national_id=session.login, today=datetime.now(VIETNAM).date())
        form = validate_registration(body, context, svc.catalog, svc.rules)
        await check_photo(svc, form)
        if svc.memory_shedding:
            raise Overloaded(
                retry_after=svc.sampler.retry_after(None), extra={"reason": "redis_memory"}
            )
        receipt = await svc.enqueuer.submit(
            streams.Submission(
                candidate_id=session.subject,
                shard=svc.settings.shard_of(session.subject),
                idempotency_key=key,
                form=form,
                phase="trial" if phase == "trial" else "official",
            )
        )
    except ExamregError as exc:
        count_refusal(exc)
        raise
    if receipt.replayed:
        metrics.SUBMISSIONS_REPLAYED.inc()
    else:
        metrics.SUBMISSIONS_ACCEPTED.labels(receipt.phase).inc()
    return receipt


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
    # Redis first, then PostgreSQL: a form released from Redis is already committed there.
    queued = await streams.latest_queued(svc.redis, shard, candidate_id)
    persisted = await store.registration(svc.pool, candidate_id)
    if queued is not None and (persisted is None or queued.version > persisted.version):
        dead = await dead_letters.mark(svc.redis, shard, candidate_id, queued.receipt_id)
        newest: dict[str, Any] = {
            "version": queued.version,
            "status": "queued" if dead is None else "needs_attention",
            "receipt_id": queued.receipt_id,
            "phase": queued.phase,
            "accepted_at": queued.accepted_at,
            "persisted_at": None,
            "form": queued.form,
        }
        if dead is not None:
            newest["attention"] = attention(queued.version, queued.receipt_id)
        return newest
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
        latest = await streams.latest_queued(svc.redis, shard, candidate_id)
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
