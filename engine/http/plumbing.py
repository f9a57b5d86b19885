"""Request reading and session plumbing shared by the JSON endpoints and the pages.

Owns: reading a body safely (size and time limits; JSON: content type, UTF-8), required string
fields, the session token (Bearer header, or the cookie where a cookie may say who is asking:
`API_COOKIE`) and cookie, and the JSON face of the one password-login flow
(`engine.services.accounts.authenticate`: throttle → look up → verify off the loop → rotate the
session with a fresh CSRF token). It must not know what a registration is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from engine.adapters.sessions import Session
from engine.errors import (
    FieldError,
    InvalidRequest,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    UnsupportedMediaType,
)
from engine.http.gate import admit
from engine.http.responses import json_response, services
from engine.services.accounts import Account, authenticate
from engine.types import SessionKind

COOKIES: dict[SessionKind, str] = {"candidate": "examreg_session", "staff": "examreg_staff_session"}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) what is larger than `limit` bytes, declared or streamed, and
    cutting off (408) one that has not fully arrived within `EXAMREG_BODY_TIMEOUT_SECONDS`.

    Callers authenticate first: only a caller with a session makes the server wait for a body.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(services(request).settings.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge()
                chunks.append(chunk)
    except ClientDisconnect as exc:
        raise MalformedRequest() from exc
    except TimeoutError as exc:  # our deadline only: a cancellation from outside propagates
        raise RequestTimeout() from exc
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing what is too large, not JSON, or not UTF-8."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType()
    body = await read_body(request, limit)
    try:
        return orjson.loads(body)
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


# Whether the JSON API takes a session from its cookie too. Not for staff: a browser sends the
# console's cookie with any top-level GET, a link clicked elsewhere included (SameSite=Lax), so a
# link to `…/candidates/{id}?reveal=1&reason=…` would run an audited reveal under the clicking
# agent's name with someone else's reason. Staff API calls carry `Authorization: Bearer` only; the
# console's pages take the cookie and check a CSRF token on every read instead.
API_COOKIE: dict[SessionKind, bool] = {"candidate": True, "staff": False}


def _token(request: Request, kind: SessionKind, cookie: bool) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(COOKIES[kind]) if cookie else None


def session_token(request: Request, kind: SessionKind, *, page: bool = False) -> str:
    """The caller's session token of this kind, unchecked (see `current_session`).

    Raises:
        Unauthenticated: no token, or one no session can have.
    """
    token = _token(request, kind, page or API_COOKIE[kind])
    if not token or len(token) > 64:
        raise Unauthenticated()
    return token


async def current_session(request: Request, kind: SessionKind, *, page: bool = False) -> Session:
    """The caller's live session of this kind; a token of the other kind is no session at all.

    The token comes from `Authorization: Bearer`, or from the session cookie for pages (`page`)
    and for the candidates' JSON API (see `API_COOKIE`).
    """
    token = session_token(request, kind, page=page)
    session = await services(request).sessions.get(token, kind)
    if session is None:
        raise Unauthenticated()
    return session


def set_session_cookie(
    response: Response, request: Request, kind: SessionKind, token: str, max_age: int
) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure whenever the request came over HTTPS."""
    response.set_cookie(
        COOKIES[kind],
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


async def password_login(
    request: Request,
    kind: SessionKind,
    lookup: Callable[[str], Awaitable[Account | None]],
    login_field: str = "login",
) -> Response:
    """The JSON login endpoints: `authenticate`, answered with the token and the cookie."""
    svc = services(request)
    fields = string_fields(await read_json(request, 4096), (login_field, "password"))
    login = await authenticate(
        svc,
        kind,
        fields[login_field].strip(),
        fields["password"],
        client_address(request),
        lookup,
    )
    return session_answer(
        request, kind, login.token, login.expires, login.account.must_change_password
    )


def session_answer(
    request: Request, kind: SessionKind, token: str, expires: float, must_change_password: bool
) -> Response:
    """A new session as the JSON API hands it out (login, password change): the token in the
    body, and in the HttpOnly cookie."""
    response = json_response(
        {
            "token": token,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            "must_change_password": must_change_password,
        },
        headers={"Cache-Control": "no-store"},
    )
    max_age = services(request).settings.session_absolute_seconds
    set_session_cookie(response, request, kind, token, max_age)
    return response


async def logout(request: Request, kind: SessionKind) -> Response:
    session = await current_session(request, kind)
    admit(request)
    await services(request).sessions.revoke(session)
    response = Response(status_code=204)
    response.delete_cookie(COOKIES[kind], path="/")
    return response
