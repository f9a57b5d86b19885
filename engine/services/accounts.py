"""Logging in and changing a password, for every kind of account (candidates and staff).

Owns the one password-login flow (throttle → look up → verify off the loop → open a new session
with a fresh CSRF token → check the password did not change meanwhile), the check that precedes a
password change, and what follows one: every session of the account ends and the caller goes on
with a new one. Each kind brings its own account lookup and password setter; the JSON endpoints
and the pages both call these, so there is one way in. It must not read a request.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from engine.adapters import backend, metrics
from engine.adapters.sessions import Attempt, Session
from engine.domain.passwords import check_password_policy
from engine.errors import InvalidCredentials, Overloaded, TooManyAttempts
from engine.services import activity
from engine.services.container import Services
from engine.types import SessionKind


@dataclass(frozen=True, slots=True)
class Account:
    """What a login needs to know about an account."""

    subject: int
    password_hash: str
    must_change_password: bool
    role: str | None = None  # staff only; requests read it from the staff row, never the session
    unit: str | None = None  # candidates: "PP-SSS", kept in the session for the window's lookup


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: its token, its absolute expiry and its CSRF token."""

    token: str
    expires: float  # epoch seconds
    csrf: str  # stored in the session's scope; the web pages' forms must echo it


@dataclass(frozen=True, slots=True)
class Login:
    """A successful login: the new session's token, its absolute expiry and CSRF token."""

    token: str
    expires: float  # epoch seconds
    account: Account
    csrf: str  # stored in the session's scope; the web pages' forms must echo it


async def open_session(
    svc: Services, kind: SessionKind, subject: int, login_id: str, scope: dict[str, Any]
) -> NewSession:
    """A new session with a fresh CSRF token (not derived from settings.secret_key, which may
    differ per process)."""
    csrf = secrets.token_urlsafe(32)
    token, expires = await svc.sessions.create(subject, kind, login_id, {**scope, "csrf": csrf})
    return NewSession(token, expires, csrf)


async def authenticate(
    svc: Services,
    kind: SessionKind,
    login_id: str,
    password: str,
    address: str,
    lookup: Callable[[str], Awaitable[Account | None]],
) -> Login:
    """Throttle, verify (unknown accounts cost the same and fail the same), open a new session.

    Raises:
        TooManyAttempts: the account must wait, or the address is over its cap (Retry-After).
        Overloaded: too many password hashes are already waiting (with Retry-After).
        InvalidCredentials: unknown account or wrong password, indistinguishably.
    """
    svc.passwords.refuse_when_full()  # a login refused for load costs no Redis or SQL call
    attempt = await _attempt(svc, kind, login_id, address)
    try:
        account = await lookup(login_id)
        ok = await _verify(svc, attempt, account.password_hash if account else None, password)
    except backend.BACKEND_ERRORS:
        await _forget(svc, attempt)  # no password was judged: the attempt does not count
        raise
    if not ok or account is None:
        await svc.throttle.failed(attempt)
        metrics.LOGINS.labels(kind, "failure").inc()
        if kind == "candidate" and account is not None:  # an unknown login names no one
            await activity.record_account(svc.pool, kind, account.subject, "login_failed", address)
        raise InvalidCredentials()
    # The forced change travels with the session, so the candidates' hot path reads no roster
    # row to enforce it. It cannot go stale the permissive way: a reset (false → true) ends every
    # session of the account, and a change (true → false) replaces the session it came from.
    scope: dict[str, Any] = {"must_change": account.must_change_password}
    if account.unit is not None:  # the window of this candidate, without a roster read per request
        scope["unit"] = account.unit
    try:
        opened = await open_session(svc, kind, account.subject, login_id, scope)
        # A password change or reset that committed while the hash was being verified ended the
        # account's sessions before this one existed. Read the account again now that this
        # session is listed: if the password verified is no longer the account's, this session
        # must not live (a reset committed after this read revokes it through the index).
        again = await lookup(login_id)
    except backend.BACKEND_ERRORS:
        # The password was right and the session could not be opened (Valkey or PostgreSQL
        # down, a failover): a 503 the owner retries, never a failure counted against them.
        await _forget(svc, attempt)
        raise
    if again is None or again.password_hash != account.password_hash:
        await svc.sessions.revoke_token(kind, account.subject, opened.token)
        metrics.LOGINS.labels(kind, "failure").inc()
        raise InvalidCredentials()
    await svc.throttle.succeeded(attempt)
    metrics.LOGINS.labels(kind, "success").inc()
    if kind == "candidate":  # staff logins: the desk's reads are each audited already
        await activity.record_account(svc.pool, kind, account.subject, "login", address)
    return Login(opened.token, opened.expires, account, opened.csrf)


async def replace_sessions(svc: Services, session: Session) -> NewSession:
    """After a password change: end every session of the account, this one included, and open
    the one the caller goes on with (a new token: whoever held the old one is out; no forced
    change pending any more)."""
    await svc.sessions.revoke_all(session.kind, session.subject)
    scope: dict[str, Any] = {"must_change": False}
    if "unit" in session.scope:
        scope["unit"] = session.scope["unit"]
    return await open_session(svc, session.kind, session.subject, session.login, scope)


async def _forget(svc: Services, attempt: Attempt) -> None:
    """Take back an attempt no password judgement ended (a backend failed on the way): best
    effort, for the backend that failed may be the throttle's own."""
    with contextlib.suppress(*backend.BACKEND_ERRORS):
        await svc.throttle.abandoned(attempt)


async def _attempt(svc: Services, kind: SessionKind, login_id: str, address: str) -> Attempt:
    """One password check let through by the throttle, counted against the account and address."""
    try:
        return await svc.throttle.attempt(f"{kind}:{login_id}", address)
    except TooManyAttempts:
        metrics.LOGINS.labels(kind, "throttled").inc()
        raise


async def _verify(
    svc: Services, attempt: Attempt, password_hash: str | None, password: str
) -> bool:
    try:
        return await svc.passwords.verify(password_hash, password)
    except Overloaded:
        await svc.throttle.abandoned(attempt)  # nothing was checked: nothing to count
        raise


async def new_password_hash(
    svc: Services,
    session: Session,
    address: str,
    current_hash: str | None,
    current: str,
    new: str,
) -> str:
    """The hash of `new` once the policy holds and the current password is verified.

    The current-password check is throttled like a login of the same account (one counter for
    both), so a stolen session cannot guess the password faster than the login page allows.

    Raises:
        WeakPassword: the new one breaks the policy (checked first: it costs no hash).
        TooManyAttempts: the account must wait, or the address is over its cap (Retry-After).
        InvalidCredentials: the current password is wrong.
    """
    check_password_policy(
        new, current, login=session.login, min_length=svc.settings.password_min_length
    )
    attempt = await _attempt(svc, session.kind, session.login, address)
    if not await _verify(svc, attempt, current_hash, current):
        await svc.throttle.failed(attempt)
        raise InvalidCredentials()
    await svc.throttle.succeeded(attempt)
    return await svc.passwords.hash(new)
