"""Staff accounts on HTTP API v1: login, logout, password, and the role check other routes use.

Owns `POST /api/v1/staff/login|logout|password` (the candidates' login flow with the staff kind)
and `require_staff`, which support-desk and operator endpoints call with the roles they admit.
What a role allows is `engine.services.staff`'s.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.http import plumbing
from engine.http.plumbing import (
    client_address,
    current_session,
    password_login,
    read_json,
    session_answer,
    string_fields,
)
from engine.http.responses import services
from engine.services.staff import ROLES, StaffSession, staff_account, staff_member
from engine.services.staff import change_password as change_staff_password


async def require_staff(
    request: Request, roles: frozenset[str], *, forced_ok: bool = False
) -> StaffSession:
    """The caller's staff session if their role (read from the staff row) is in `roles`.

    Raises:
        Unauthenticated: no staff session (a candidate's token does not count).
        PasswordChangeRequired: the issued password is still in use (unless `forced_ok`).
        Forbidden: a staff session whose role is not admitted here.
    """
    session = await current_session(request, "staff")
    return await staff_member(services(request), session, roles, forced_ok=forced_ok)


async def login(request: Request) -> Response:
    svc = services(request)
    return await password_login(
        request, "staff", lambda username: staff_account(svc, username), login_field="username"
    )


async def logout(request: Request) -> Response:
    return await plumbing.logout(request, "staff")


async def change_password(request: Request) -> Response:
    """200 with the new session (token and cookie): every session of the account has ended."""
    session = await current_session(request, "staff")
    await staff_member(services(request), session, ROLES, forced_ok=True)  # exists, enabled
    fields = string_fields(await read_json(request, 4096), ("current_password", "new_password"))
    opened = await change_staff_password(
        services(request),
        session,
        client_address(request),
        fields["current_password"],
        fields["new_password"],
    )
    return session_answer(request, "staff", opened.token, opened.expires, False)


routes = [
    Route("/api/v1/staff/login", login, methods=["POST"]),
    Route("/api/v1/staff/logout", logout, methods=["POST"]),
    Route("/api/v1/staff/password", change_password, methods=["POST"]),
]
