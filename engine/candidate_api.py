"""Candidate endpoints of HTTP API v1 (architecture §6.3): login, profile, registration, receipts.

Owns reading requests (size limit, JSON, UTF-8), authentication of candidate sessions, and the
submission flow: session → Idempotency-Key → window → validation → admission → durable enqueue.
It must not talk to Redis or SQL except through `engine.queue`, `engine.store` and `engine.auth`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from engine import metrics, queue, store
from engine.api import Services, json_response, language, services
from engine.auth import Session, check_password_policy
from engine.errors import (
    ExamregError,
    FieldError,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InvalidCredentials,
    InvalidRegistration,
    InvalidRequest,
    MalformedRequest,
    NoRegistration,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    WeakPassword,
    WindowClosed,
)
from engine.registration import CandidateContext, validate_registration
from engine.settings import VIETNAM

SESSION_COOKIE = "examreg_session"
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RECEIPT_ID = re.compile(r"^[0-9A-F]{20}$")
_LOGIN = re.compile(r"^[0-9A-Za-z]{6,20}$")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing what is too large, not JSON, or not UTF-8."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType()
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge()
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise MalformedRequest() from exc
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest() from exc


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


async def candidate_session(request: Request) -> Session:
    token = _token(request)
    if not token or len(token) > 64:
        raise Unauthenticated()
    session = await services(request).sessions.get(token, "candidate")
    if session is None:
        raise Unauthenticated()
    return session


def _string_fields(body: Any, names: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(body, dict):
        raise MalformedRequest()
    errors = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            errors.append(
                FieldError(
                    name, "required", "Vui lòng nhập thông tin này.", "This field is required."
                )
            )
    if errors:
        raise InvalidRequest(errors=tuple(errors))
    return {name: body[name] for name in names}


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- auth ---------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    svc = services(request)
    fields = _string_fields(await read_json(request, 4096), ("login", "password"))
    login_id, password = fields["login"].strip(), fields["password"]
    address = _client_address(request)
    await svc.throttle.check(login_id, address)
    record = await store.candidate_login(svc.pool, login_id) if _LOGIN.match(login_id) else None
    ok = await svc.passwords.verify(record.password_hash if record else None, password[:128])
    if not ok or record is None:
        await svc.throttle.failed(login_id, address)
        metrics.LOGINS.labels("candidate", "failure").inc()
        raise InvalidCredentials()
    await svc.throttle.succeeded(login_id)
    metrics.LOGINS.labels("candidate", "success").inc()
    token, expires = await svc.sessions.create(record.candidate_id, "candidate", login_id)
    body = {
        "token": token,
        "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
        "must_change_password": record.must_change_password,
    }
    response = json_response(body)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=svc.settings.session_absolute_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    session = await candidate_session(request)
    await services(request).sessions.revoke(session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def change_password(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    fields = _string_fields(await read_json(request, 4096), ("current_password", "new_password"))
    current_hash = await store.candidate_password_hash(svc.pool, session.subject)
    if not await svc.passwords.verify(current_hash, fields["current_password"][:128]):
        raise InvalidCredentials()
    check_password_policy(fields["new_password"], fields["current_password"])
    new_hash = await svc.passwords.hash(fields["new_password"])
    await store.set_candidate_password(svc.pool, session.subject, new_hash)
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


async def submit_registration(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    try:
        key = _idempotency_key(request)
        phase = _phase(svc)
        body = await read_json(request, svc.settings.max_body_bytes)
        # The session holds the roster's national ID, so the hot path needs no roster query.
        context = CandidateContext(national_id=session.login, today=datetime.now(VIETNAM).date())
        form = validate_registration(body, context, svc.catalog)
        if svc.memory_shedding:
            raise Overloaded(
                retry_after=svc.settings.retry_after_seconds, extra={"reason": "redis_memory"}
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
        return json_response(receipt.to_json(), 202, {"Idempotent-Replayed": "true"})
    metrics.SUBMISSIONS_ACCEPTED.labels(receipt.phase).inc()
    return json_response(receipt.to_json(), 202)


def _count_refusal(exc: ExamregError) -> None:
    if isinstance(exc, Overloaded):
        metrics.SUBMISSIONS_SHED.labels(str(exc.extra.get("reason", "unknown"))).inc()
    elif not isinstance(exc, Unauthenticated):
        metrics.SUBMISSIONS_REJECTED.labels(exc.code).inc()


async def get_registration(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    shard = svc.settings.shard_of(session.subject)
    # Redis first, then PostgreSQL: a form released from Redis is already committed there.
    queued = await queue.latest_queued(svc.redis, shard, session.subject)
    persisted = await store.registration(svc.pool, session.subject)
    if queued is not None and (persisted is None or queued.version > persisted.version):
        return json_response(
            {
                "version": queued.version,
                "status": "queued",
                "receipt_id": queued.receipt_id,
                "phase": queued.phase,
                "accepted_at": queued.accepted_at,
                "persisted_at": None,
                "form": queued.form,
            }
        )
    if persisted is None:
        raise NoRegistration()
    return json_response(
        {
            "version": persisted.version,
            "status": "persisted",
            "receipt_id": persisted.receipt_id,
            "phase": persisted.phase,
            "accepted_at": persisted.accepted_at.isoformat(),
            "persisted_at": persisted.persisted_at.isoformat(),
            "form": persisted.form,
        }
    )


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

__all__ = ["IdempotencyKeyReused", "InvalidRegistration", "WeakPassword", "routes"]
