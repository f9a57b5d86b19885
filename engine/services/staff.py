"""Staff accounts without a request: roles, what a staff session allows, login lookup, password.

Owns the roles (`support`, `school` — its own school only —, `operator`, `admin`), the
`StaffSession` other services are handed, and the account lookup and password setter the one
login flow (`engine.services.accounts`) uses for staff. It must not read a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.adapters import store
from engine.adapters.sessions import Session
from engine.errors import Forbidden
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


async def change_password(svc: Services, session: Session, current: str, new: str) -> NewSession:
    """Replace a staff password (and clear the forced change) after checking the current one;
    then every session of the account ends and the caller goes on with the new one returned.

    Raises:
        InvalidCredentials: the current password is wrong.
        WeakPassword: the new one breaks the policy.
    """
    current_hash = await store.staff_password_hash(svc.pool, session.subject)
    new_hash = await new_password_hash(svc, current_hash, current, new)
    await store.set_staff_password(svc.pool, session.subject, new_hash)
    return await replace_sessions(svc, session, session.scope)
