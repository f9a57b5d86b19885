"""Candidate endpoints of HTTP API v1 (architecture §6.3): login, profile, registration, receipts.

Owns the candidate's routes: the session, the `Idempotency-Key` header, reading the body (only
once the session is known), admission to the in-flight gate (after both), and the answers (202
with `Idempotent-Replayed` on a replay). What a submission does — window, validation, admission,
durable enqueue — is `engine.services.candidates.submit`, which the web form calls too, so both
reach the queue by one path.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.adapters.sessions import Session
from engine.adapters.streams import Receipt
from engine.domain import photo
from engine.errors import (
    ExamregError,
    IdempotencyKeyRequired,
    NoRegistration,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthenticated,
)
from engine.http import plumbing
from engine.http.gate import admit
from engine.http.plumbing import (
    client_address,
    current_session,
    password_login,
    read_body,
    read_json,
    session_answer,
    session_token,
    string_fields,
)
from engine.http.responses import api_language, json_response, services
from engine.services import candidates, photos, unit_review
from engine.services import window as window_service


async def candidate_session(request: Request, *, forced_ok: bool = False) -> Session:
    """The caller's candidate session, past the forced password change unless `forced_ok`.

    Raises:
        Unauthenticated: no live candidate session.
        PasswordChangeRequired: the issued password is still in use (only the password change
            and logout pass with `forced_ok`).
    """
    session = await current_session(request, "candidate")
    if not forced_ok:
        await candidates.require_password_changed(services(request), session)
    return session


async def login(request: Request) -> Response:
    svc = services(request)
    return await password_login(
        request, "candidate", lambda login_id: candidates.candidate_account(svc, login_id)
    )


async def logout(request: Request) -> Response:
    return await plumbing.logout(request, "candidate")


async def change_password(request: Request) -> Response:
    """200 with the new session (token and cookie): every session of the account has ended."""
    svc = services(request)
    session = await candidate_session(request, forced_ok=True)
    fields = string_fields(await read_json(request, 4096), ("current_password", "new_password"))
    opened = await candidates.change_password(
        svc, session, client_address(request), fields["current_password"], fields["new_password"]
    )
    return session_answer(request, "candidate", opened.token, opened.expires, False)


# -- profile and registration ----------------------------------------------------------------------


async def me(request: Request) -> Response:
    session = await candidate_session(request)
    admit(request)
    return json_response(await candidates.profile(services(request), session.subject))


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not candidates.valid_idempotency_key(key):
        raise IdempotencyKeyRequired()
    return key


async def submit_registration(request: Request) -> Response:
    """202 with the receipt. A candidate token naming its shard costs one Redis round trip: the
    session is checked in the enqueue's own call (`candidates.submit_by_token`); anything refused
    before that call checks the session first, so 401 and 403 still answer before the rest."""
    svc = services(request)
    token = session_token(request, "candidate")
    # A closed window (for the candidate and unit the token claims) takes the session's path:
    # it refuses before the body is read, and still answers a replay accepted before the close.
    if not candidates.fast_path(token) or not candidates.claimed_window_open(svc, token):
        return await _submit_with_session(request)
    try:
        key = _idempotency_key(request)
        body = await read_json(request, svc.settings.max_body_bytes)
        admit(request)  # a complete body: now it is work under way
    except ExamregError as exc:
        if not isinstance(exc, Overloaded):  # shedding stays cheap: no Redis call
            await candidates.session_of(svc, token)
        candidates.count_refusal(exc)
        raise
    return _accepted(await candidates.submit_by_token(svc, token, key, body))


async def _submit_with_session(request: Request) -> Response:
    svc = services(request)
    session = await candidate_session(request)
    try:
        key = _idempotency_key(request)
        await candidates.open_window(svc, session, key)  # a closed window: before the body
        body = await read_json(request, svc.settings.max_body_bytes)
        admit(request)  # logged in, body complete: now it is work under way
    except ExamregError as exc:
        candidates.count_refusal(exc)
        raise
    return _accepted(await candidates.submit(svc, session, key, body))


def _accepted(receipt: Receipt) -> Response:
    if receipt.replayed:
        return json_response(receipt.to_json(), 202, {"Idempotent-Replayed": "true"})
    return json_response(receipt.to_json(), 202)


async def upload_photo(request: Request) -> Response:
    """201 with the stored photo's hash (200 if that very photo was stored already)."""
    svc = services(request)
    await candidate_session(request)  # who uploads is not stored: the hash is the photo's
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if media_type not in photo.MEDIA_TYPES:
            raise photo.unsupported_type()
        try:
            data = await read_body(request, svc.settings.photo_max_bytes)
        except PayloadTooLarge as exc:
            raise photo.too_large(svc.settings.photo_max_bytes) from exc
        admit(request)
        stored = await photos.ingest(svc, data, media_type)
    except ExamregError as exc:
        candidates.count_refusal(exc)
        raise
    return json_response(stored.to_json(), 201 if stored.stored else 200)


async def get_registration(request: Request) -> Response:
    session = await candidate_session(request)
    admit(request)
    svc = services(request)
    registration = await candidates.newest_registration(svc, session.subject)
    if registration is None:
        raise NoRegistration()
    review = await unit_review.candidate_review(svc, session.subject, registration["version"])
    return json_response({**registration, "review": review})


async def get_receipt(request: Request) -> Response:
    session = await candidate_session(request)
    admit(request)
    receipt_id = request.path_params["receipt_id"]
    receipt = await candidates.receipt_status(services(request), session.subject, receipt_id)
    if receipt is None:
        raise NotFound()
    if receipt["status"] == "queued":  # the contract's queued receipt: no times yet
        return json_response({k: receipt[k] for k in ("receipt_id", "version", "status")})
    if receipt["status"] == "needs_attention":
        keys = ("receipt_id", "version", "status", "attention")
        return json_response({k: receipt[k] for k in keys})
    return json_response(receipt)


# -- public reference and window ----------------------------------------------------------------


async def reference(request: Request) -> Response:
    svc = services(request)
    headers = {"ETag": svc.reference_etag, "Cache-Control": "public, max-age=300"}
    if request.headers.get("if-none-match") == svc.reference_etag:
        return Response(status_code=304, headers=headers)
    return Response(svc.reference_body, headers=headers, media_type="application/json")


async def window(request: Request) -> Response:
    """The national window for anyone; a logged-in candidate's own (their unit's, their
    province's, a reopen's) when the request carries their session."""
    svc = services(request)
    try:
        session: Session | None = await current_session(request, "candidate")
    except Unauthenticated:
        session = None  # anonymous (or an expired token): the public answer, never a 401
    if session is None:
        cw = svc.calendar.current().resolve(datetime.now(UTC))
    else:
        cw = await window_service.candidate_window(svc.calendar, svc.pool, session)
    body = window_service.window_json(cw, personal=session is not None)
    return json_response({**body, "lang": api_language(request)})


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/password", change_password, methods=["POST"]),
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/me/registration", submit_registration, methods=["PUT"]),
    Route("/api/v1/me/registration", get_registration, methods=["GET"]),
    Route("/api/v1/me/photo", upload_photo, methods=["POST"]),
    Route("/api/v1/me/receipts/{receipt_id}", get_receipt, methods=["GET"]),
    Route("/api/v1/reference", reference, methods=["GET"]),
    Route("/api/v1/window", window, methods=["GET"]),
]
