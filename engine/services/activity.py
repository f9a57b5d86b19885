"""The record of every action (issue 14 item 5): who did what, when, why, from where.

Owns the audit rows of actions that are not a desk read (those are `support_desk`'s): a
candidate's login and password change, and the commands of operators and admins (trial purge,
reconcile, and, through `dead_letter_desk`, dead-letter list, show and replay). Rows go to the
append-only `audit_log` (migration 0005); submissions and edits are not written here at all:
the `activity` view (migration 0008) derives them from the versions the writer persisted, so
the submission's path gains no PostgreSQL write. Candidates are named by `candidate_id`, never
by national ID. It must not read a request.
"""

from __future__ import annotations

import socket
from typing import Any

from engine.adapters import backend, support_store

# The actions the record holds, for the console's filter (a filter may name any other too).
ACTIONS = (
    "login",
    "login_failed",
    "password_change",
    "submit",
    "edit",
    "search",
    "detail",
    "reveal",
    "password_reset",
    "audit_read",
    "dead_letter_list",
    "dead_letter_show",
    "dead_letter_replay",
    "trial_purge",
    "reconcile",
    "window_set",
    "window_clear",
    "reopen_create",
    "reopen_close",
    "lock_report",
)


async def record_operator(
    conn: backend.Connection | backend.Pool,
    *,
    actor: str,
    role: str,
    action: str,
    reason: str | None,
    detail: dict[str, Any],
    staff_id: int | None = None,
    client_addr: str | None = None,
) -> None:
    """An operator's or admin's action; from the command line (`staff_id` None) the actor is
    the OS user or `--actor`, and the host is recorded instead of an address."""
    where = {"host": socket.gethostname()} if client_addr is None else {}
    if isinstance(conn, backend.Pool):
        async with conn.acquire() as held:
            await _insert(held, actor, role, action, reason, detail, staff_id, client_addr, where)
    else:
        await _insert(conn, actor, role, action, reason, detail, staff_id, client_addr, where)


async def _insert(
    conn: Any,
    actor: str,
    role: str,
    action: str,
    reason: str | None,
    detail: dict[str, Any],
    staff_id: int | None,
    client_addr: str | None,
    where: dict[str, str],
) -> None:
    await support_store.audit(
        conn,
        staff_id=staff_id,
        role=role,
        action=action,
        candidate_id=None,
        reason=reason,
        client_addr=client_addr,
        detail={"actor": actor, **where, **detail},
    )


async def record_account(
    pool: backend.Pool,
    kind: str,
    subject: int,
    action: str,
    address: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An account holder's own action (login, password change): one INSERT, never on the
    submission's path. A candidate is the row's `candidate_id` (role `candidate`), a staff
    member its `staff_id` (role `staff`: the row keeps who, the staff table their role)."""
    candidate = kind == "candidate"
    async with pool.acquire() as conn:
        await support_store.audit(
            conn,
            staff_id=None if candidate else subject,
            role="candidate" if candidate else "staff",
            action=action,
            candidate_id=subject if candidate else None,
            reason=None,
            client_addr=address,
            detail=detail or {},
        )
