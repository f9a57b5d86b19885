"""Candidate endpoints of HTTP API v1 (architecture §6.3): login, profile, registration, receipts.

Owns the candidate's routes and the submission flow: session → Idempotency-Key → window →
validation → admission → durable enqueue (`submit`, which the web form in `engine.web` calls too,
so both reach the queue by one path). Body reading and the login flow are `engine.http`'s.
It must not talk to Redis or SQL except through `engine.queue`, `engine.store` and `engine.auth`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import http, metrics, queue, store
from engine.api import Services, json_response, language, services
from engine.auth import Session
from engine.errors import (
    ExamregError,
    IdempotencyKeyRequired,
    NoRegistration,
    NotFound,
    Overloaded,
    Unauthenticated,
    WindowClosed,
)
from engine.http import Account, current_session, password_login, read_json, string_fields
from engine.queue import Receipt
from engine.registration import CandidateContext, validate_registration
from engine.settings import VIETNAM

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RECEIPT_ID = re.compile(r"^[0-9A-F]{20}$")
_LOGIN = re.compile(r"^[0-9A-Za-z]{6,20}$")


async def candidate_session(request: Request) -> Session:
    return await current_session(request, "candidate")


async def candidate_account(svc: Services, login_id: str) -> Account | None:
    """The login account of a roster candidate (the 12-digit ID), or None."""
    if not _LOGIN.match(login_id):
        return None
    record = await store.candidate_login(svc.pool, login_id)
    if record is None:
        return None
    return Account(record.candidate_id, record.password_hash, record.must_change_password)


async def login(request: Request) -> Response:
    svc = services(request)
    return await password_login(
        request, "candidate", lambda login_id: candidate_account(svc, login_id)
    )


async def logout(request: Request) -> Response:
    return await http.logout(request, "candidate")


async def set_password(svc: Services, candidate_id: int, current: str, new: str) -> None:
    """Verify the current password, apply the policy, store the new hash (API and web page).

    Raises:
        InvalidCredentials: the current password is wrong.
        WeakPassword: the new one breaks the policy.
    """
    current_hash = await store.candidate_password_hash(svc.pool, candidate_id)
    new_hash = await http.new_password_hash(svc, current_hash, current, new)
    await store.set_candidate_password(svc.pool, candidate_id, new_hash)


async def change_password(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    fields = string_fields(await read_json(request, 4096), ("current_password", "new_password"))
    await set_password(svc, session.subject, fields["current_password"], fields["new_password"])
    return Response(status_code=204)


# -- profile and registration ----------------------------------------------------------------------


async def _profile(svc: Services, candidate_id: int) -> dict[str, Any]:
    profile = await store.candidate_profile(svc.pool, candidate_id)
    if profile is None:  # the account was removed from the roster after login
        raise Unauthenticated()
    return profile


async def me(request: Request) -> Response:
    session = await candidate_session(request)
    return json_response(await _profile(services(request), session.subject))


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not _IDEMPOTENCY_KEY.match(key):
        raise IdempotencyKeyRequired()
    return key


def _phase(svc: Services) -> str:
    phase = svc.settings.window.phase(datetime.now(UTC))
    if phase not in ("trial", "official"):
        raise WindowClosed(extra={"phase": phase})
    return phase


def valid_idempotency_key(key: str) -> bool:
    return _IDEMPOTENCY_KEY.match(key) is not None


async def submit(svc: Services, session: Session, key: str, body: Any) -> Receipt:
    """Window → validation → admission → durable enqueue of one decoded body; counted in metrics.

    Raises:
        WindowClosed, InvalidRegistration, IdempotencyKeyReused, Overloaded, Unavailable.
    """
    try:
        phase = _phase(svc)
        # The session holds the roster's national ID, so the hot path needs no roster query.
        context = CandidateContext(national_id=session.login, today=datetime.now(VIETNAM).date())
        form = validate_registration(body, context, svc.catalog)
        if svc.memory_shedding:
            raise Overloaded(
                retry_after=svc.sampler.retry_after(None), extra={"reason": "redis_memory"}
            )
        receipt = await svc.enqueuer.submit(
            queue.Submission(
                candidate_id=session.subject,
                shard=svc.settings.shard_of(session.subject),
                idempotency_key=key,
                form=form,
                phase="trial" if phase == "trial" else "official",
            )
        )
    except ExamregError as exc:
        _count_refusal(exc)
        raise
    if receipt.replayed:
        metrics.SUBMISSIONS_REPLAYED.inc()
    else:
        metrics.SUBMISSIONS_ACCEPTED.labels(receipt.phase).inc()
    return receipt


async def submit_registration(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    try:
        key = _idempotency_key(request)
        _phase(svc)  # a closed window refuses before the body is read
        body = await read_json(request, svc.settings.max_body_bytes)
    except ExamregError as exc:
        _count_refusal(exc)
        raise
    receipt = await submit(svc, session, key, body)
    if receipt.replayed:
        return json_response(receipt.to_json(), 202, {"Idempotent-Replayed": "true"})
    return json_response(receipt.to_json(), 202)


def _count_refusal(exc: ExamregError) -> None:
    if isinstance(exc, Overloaded):
        metrics.SUBMISSIONS_SHED.labels(str(exc.extra.get("reason", "unknown"))).inc()
    elif not isinstance(exc, Unauthenticated):
        metrics.SUBMISSIONS_REJECTED.labels(exc.code).inc()


async def newest_registration(svc: Services, candidate_id: int) -> dict[str, Any] | None:
    """Read-your-writes: the newest accepted version, from Redis while queued, else PostgreSQL."""
    shard = svc.settings.shard_of(candidate_id)
    # Redis first, then PostgreSQL: a form released from Redis is already committed there.
    queued = await queue.latest_queued(svc.redis, shard, candidate_id)
    persisted = await store.registration(svc.pool, candidate_id)
    if queued is not None and (persisted is None or queued.version > persisted.version):
        return {
            "version": queued.version,
            "status": "queued",
            "receipt_id": queued.receipt_id,
            "phase": queued.phase,
            "accepted_at": queued.accepted_at,
            "persisted_at": None,
            "form": queued.form,
        }
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


async def get_registration(request: Request) -> Response:
    session = await candidate_session(request)
    registration = await newest_registration(services(request), session.subject)
    if registration is None:
        raise NoRegistration()
    return json_response(registration)


async def get_receipt(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    receipt_id = request.path_params["receipt_id"]
    if not _RECEIPT_ID.match(receipt_id):
        raise NotFound()
    shard = svc.settings.shard_of(session.subject)
    version = await queue.queued_receipt_version(svc.redis, shard, session.subject, receipt_id)
    if version is not None:
        return json_response({"receipt_id": receipt_id, "version": version, "status": "queued"})
    persisted = await store.receipt(svc.pool, session.subject, receipt_id)
    if persisted is None:
        raise NotFound()
    return json_response(
        {
            "receipt_id": receipt_id,
            "version": persisted.version,
            "status": "persisted",
            "phase": persisted.phase,
            "accepted_at": persisted.accepted_at.isoformat(),
            "persisted_at": persisted.persisted_at.isoformat(),
        }
    )


# -- public reference and window ----------------------------------------------------------------


async def reference(request: Request) -> Response:
    svc = services(request)
    headers = {"ETag": svc.reference_etag, "Cache-Control": "public, max-age=300"}
    if request.headers.get("if-none-match") == svc.reference_etag:
        return Response(status_code=304, headers=headers)
    return Response(svc.reference_body, headers=headers, media_type="application/json")


async def window(request: Request) -> Response:
    svc = services(request)
    w = svc.settings.window
    phase = w.phase(datetime.now(UTC))
    opens, closes = (
        (w.trial_opens_at, w.trial_closes_at) if phase == "trial" else (w.opens_at, w.closes_at)
    )
    return json_response(
        {
            "phase": phase,
            "opens_at": opens.isoformat() if opens else None,
            "closes_at": closes.isoformat() if closes else None,
            "trial_opens_at": w.trial_opens_at.isoformat() if w.trial_opens_at else None,
            "trial_closes_at": w.trial_closes_at.isoformat() if w.trial_closes_at else None,
            "lang": language(request),
        }
    )


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/password", change_password, methods=["POST"]),
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/me/registration", submit_registration, methods=["PUT"]),
    Route("/api/v1/me/registration", get_registration, methods=["GET"]),
    Route("/api/v1/me/receipts/{receipt_id}", get_receipt, methods=["GET"]),
    Route("/api/v1/reference", reference, methods=["GET"]),
    Route("/api/v1/window", window, methods=["GET"]),
]
