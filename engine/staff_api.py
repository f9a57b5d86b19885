"""Staff accounts on HTTP API v1: login, logout, password, and the role check other modules use.

Owns staff authentication (`POST /api/v1/staff/login` with the same hashing, throttling and
session rules as candidates) and `require_staff`, which support-desk and operator endpoints call
with the roles they admit. Roles: `support`, `school` (its own school only), `operator`, `admin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import http, store
from engine.api import Services, services
from engine.auth import Session
from engine.errors import Forbidden
from engine.http import Account, current_session, password_login, read_json, string_fields

ROLES = frozenset({"support", "school", "operator", "admin"})
_USERNAME = re.compile(r"^[a-z0-9._-]{3,40}$")


@dataclass(frozen=True, slots=True)
class StaffSession:
    """An authenticated staff member and what their role allows."""

    staff_id: int
    username: str
    role: str
    school: tuple[str, str] | None  # (province_code, school_code) for the `school` role


async def require_staff(request: Request, roles: frozenset[str]) -> StaffSession:
    """The caller's staff session if their role is in `roles`.

    Raises:
        Unauthenticated: no staff session (a candidate's token does not count).
        Forbidden: a staff session whose role is not admitted here.
    """
    return staff_of(await current_session(request, "staff"), roles)


def staff_of(session: Session, roles: frozenset[str]) -> StaffSession:
    """What a staff session allows, if its role is in `roles` (else Forbidden)."""
    role = str(session.scope.get("role", ""))
    if role not in roles:
        raise Forbidden()
    school = session.scope.get("school")
    return StaffSession(
        session.subject, session.login, role, (school[0], school[1]) if school else None
    )


async def staff_account(svc: Services, username: str) -> Account | None:
    """The login lookup for staff (JSON endpoint and console page alike)."""
    if not _USERNAME.match(username):
        return None
    record = await store.staff_login(svc.pool, username)
    if record is None:
        return None
    school = (
        [record.province_code, record.school_code]
        if record.province_code and record.school_code
        else None
    )
    return Account(
        record.staff_id,
        record.password_hash,
        record.must_change_password,
        {"role": record.role, "school": school},
    )


async def login(request: Request) -> Response:
    svc = services(request)
    return await password_login(
        request, "staff", lambda username: staff_account(svc, username), login_field="username"
    )


async def logout(request: Request) -> Response:
    return await http.logout(request, "staff")


async def change_password(request: Request) -> Response:
    staff = await require_staff(request, ROLES)
    fields = string_fields(await read_json(request, 4096), ("current_password", "new_password"))
    await set_password(
        services(request), staff.staff_id, fields["current_password"], fields["new_password"]
    )
    return Response(status_code=204)


async def set_password(svc: Services, staff_id: int, current: str, new: str) -> None:
    """Replace a staff password (and clear the forced change) after checking the current one.

    Raises:
        InvalidCredentials: the current password is wrong.
        WeakPassword: the new one breaks the policy.
    """
    current_hash = await store.staff_password_hash(svc.pool, staff_id)
    new_hash = await http.new_password_hash(svc, current_hash, current, new)
    await store.set_staff_password(svc.pool, staff_id, new_hash)


routes = [
    Route("/api/v1/staff/login", login, methods=["POST"]),
    Route("/api/v1/staff/logout", logout, methods=["POST"]),
    Route("/api/v1/staff/password", change_password, methods=["POST"]),
]
