"""Staff accounts without a request: roles, what a staff session allows, login lookup, password.

Owns the roles (`support`, `school` — its own school only —, `operator`, `admin`), the
`StaffSession` other services are handed (built from the staff row on every request, so a new
role or a pending password change counts at once, never a copy frozen into the session), and
the account lookup and password change the one login flow (`engine.services.accounts`) uses for
staff. It must not read a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.adapters import store
from engine.adapters.sessions import Session
from engine.errors import Forbidden, PasswordChangeRequired, Unauthenticated
from engine.services.accounts import Account, NewSession, new_password_hash, replace_sessions
from engine.services.container import Services

ROLES: Final = frozenset({"support", "school", "operator", "admin"})
_USERNAME: Final = re.compile(r"^[a-z0-9._-]{3,40}$")


@dataclass(frozen=True, slots=True)
class StaffSession:
    """An authenticated staff member and what their role allows."""

    staff_id: int
    username: str
    role: str
    school: tuple[str, str] | None  # (province_code, school_code) for the `school` role


async def staff_member(
    svc: Services, session: Session, roles: frozenset[str], *, forced_ok: bool = False
) -> StaffSession:
    """What a staff session allows now, read from the staff row on every request.

    The role, school and disabled state are the row's, not a copy taken at login: a change takes
    effect on the next request. Staff requests are few (34 desks): one primary-key read is cheap.

    Raises:
        Unauthenticated: the account no longer exists or is disabled.
        PasswordChangeRequired: the issued password is still in use (unless `forced_ok`: the
            password change itself).
        Forbidden: the role is not in `roles`.
    """
    member = await store.staff_member(svc.pool, session.subject)
    if member is None or member.disabled:
        raise Unauthenticated()
    if member.must_change_password and not forced_ok:
        raise PasswordChangeRequired()
    if member.role not in roles:
        raise Forbidden()
    school = (
        (member.province_code, member.school_code)
        if member.province_code and member.school_code
        else None
    )
    return StaffSession(member.staff_id, member.username, member.role, school)


def valid_username(username: str) -> bool:
    """3–40 of a–z, 0–9, '.', '_', '-' (the schema's rule)."""
    return _USERNAME.match(username) is not None


async def staff_account(svc: Services, username: str) -> Account | None:
    """The login lookup for staff (JSON endpoint and console page alike)."""
    if not valid_username(username):
        return None
    record = await store.staff_login(svc.pool, username)
    if record is None:
        return None
    return Account(record.staff_id, record.password_hash, record.must_change_password, record.role)


async def change_password(
    svc: Services, session: Session, address: str, current: str, new: str
) -> NewSession:
    """Replace a staff password (and clear the forced change) after checking the current one
    (throttled like a login of the account from `address`); then every session of the account
    ends and the caller goes on with the new one returned.

    Raises:
        WeakPassword: the new one breaks the policy.
        TooManyAttempts: too many wrong current passwords or logins for now (Retry-After).
        InvalidCredentials: the current password is wrong.
    """
    current_hash = await store.staff_password_hash(svc.pool, session.subject)
    new_hash = await new_password_hash(svc, session, address, current_hash, current, new)
    await store.set_staff_password(svc.pool, session.subject, new_hash)
    return await replace_sessions(svc, session)
