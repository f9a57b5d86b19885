"""Request reading and session plumbing shared by the candidate and the staff endpoints.

Owns: reading a JSON body safely (size limit, content type, UTF-8), required string fields, the
session token (Bearer header or cookie), and the one password-login flow both kinds of account use
(throttle → look up → verify off the loop → rotate the session → cookie). It must not know what a
registration is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from engine import metrics
from engine.api import json_response, services
from engine.auth import Session, SessionKind
from engine.errors import (
    FieldError,
    InvalidCredentials,
    InvalidRequest,
    MalformedRequest,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)

COOKIES: dict[SessionKind, str] = {"candidate": "examreg_session", "staff": "examreg_staff_session"}


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


def string_fields(body: Any, names: tuple[str, ...]) -> dict[str, str]:
    """The named non-empty string fields of a JSON object, or every missing one as an error."""
    if not isinstance(body, dict):
        raise MalformedRequest()
    errors = [
        FieldError(name, "required", "Vui lòng nhập thông tin này.", "This field is required.")
        for name in names
        if not isinstance(body.get(name), str) or not body[name]
    ]
    if errors:
        raise InvalidRequest(errors=tuple(errors))
    return {name: body[name] for name in names}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token(request: Request, kind: SessionKind) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(COOKIES[kind])


async def current_session(request: Request, kind: SessionKind) -> Session:
    """The caller's live session of this kind; a token of the other kind is no session at all."""
    token = _token(request, kind)
    if not token or len(token) > 64:
        raise Unauthenticated()
    session = await services(request).sessions.get(token, kind)
    if session is None:
        raise Unauthenticated()
    return session


@dataclass(frozen=True, slots=True)
class Account:
    """What a login needs to know about an account."""

    subject: int
    password_hash: str
    must_change_password: bool
    scope: dict[str, Any] = field(default_factory=dict)


async def password_login(
    request: Request,
    kind: SessionKind,
    lookup: Callable[[str], Awaitable[Account | None]],
    login_field: str = "login",
) -> Response:
    """Throttle, verify (unknown accounts cost the same and fail the same), open a new session."""
    svc = services(request)
    fields = string_fields(await read_json(request, 4096), (login_field, "password"))
    login_id, password = fields[login_field].strip(), fields["password"][:128]
    address = client_address(request)
    throttle_key = f"{kind}:{login_id}"
    await svc.throttle.check(throttle_key, address)
    account = await lookup(login_id)
    ok = await svc.passwords.verify(account.password_hash if account else None, password)
    if not ok or account is None:
        await svc.throttle.failed(throttle_key, address)
        metrics.LOGINS.labels(kind, "failure").inc()
        raise InvalidCredentials()
    await svc.throttle.succeeded(throttle_key)
    metrics.LOGINS.labels(kind, "success").inc()
    token, expires = await svc.sessions.create(account.subject, kind, login_id, account.scope)
    response = json_response(
        {
            "token": token,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            "must_change_password": account.must_change_password,
        }
    )
    response.set_cookie(
        COOKIES[kind],
        token,
        max_age=svc.settings.session_absolute_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request, kind: SessionKind) -> Response:
    session = await current_session(request, kind)
    await services(request).sessions.revoke(session)
    response = Response(status_code=204)
    response.delete_cookie(COOKIES[kind], path="/")
    return response
