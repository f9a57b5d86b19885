"""Server-side sessions and login throttling in Redis.

Owns sessions (random 128-bit tokens, idle and absolute timeouts), values a session reads once
(a POST's result, shown by the GET it redirects to) and the login throttle: growing delays per
account, a cap per client address. Keys hold digests, never a national ID.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from engine.errors import TooManyAttempts
from engine.settings import Settings
from engine.types import SessionKind

# How long an account's failures are remembered after the latest one (unless a login succeeds):
# long enough that a patient guesser keeps meeting the longest delay instead of new free tries.
ACCOUNT_MEMORY_SECONDS = 24 * 3600


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated session, as stored server-side."""

    subject: int  # candidate_id or staff_id
    kind: SessionKind
    login: str  # the national ID (candidates) or username (staff) the session was opened with
    created: float
    token_digest: str
    scope: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    """Server-side sessions: the token is only ever stored as its SHA-256."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._idle = settings.session_idle_seconds
        self._absolute = settings.session_absolute_seconds

    @staticmethod
    def _key(digest: str) -> str:
        return f"examreg:session:{digest}"

    async def create(
        self, subject: int, kind: SessionKind, login: str, scope: dict[str, Any] | None = None
    ) -> tuple[str, float]:
        """A new random token (rotated at every login) and its absolute expiry (epoch seconds).

        `scope` carries the session's CSRF token and whether a password change is pending; what
        a staff member may do is read from the staff row on every request, never kept here.
        """
        token = secrets.token_urlsafe(16)  # 128 bits
        now = time.time()
        payload = orjson.dumps(
            {
                "sub": subject,
                "kind": kind,
                "created": now,
                "login": login,
                "slid": now,
                "scope": scope or {},
            }
        )
        digest = _digest(token)
        index = self._subject_key(kind, subject)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(digest), payload, ex=self._idle)
        pipe.sadd(index, digest)  # lets a password change or reset end every session of the account
        pipe.expire(index, self._absolute)
        await pipe.execute()
        return token, now + self._absolute

    async def get(self, token: str, kind: SessionKind) -> Session | None:
        digest = _digest(token)
        key = self._key(digest)
        # One read. Every Redis write waits for the AOF fsync, so the sliding idle timeout is
        # pushed forward (a write) at most once a minute, not on every request.
        raw = await self._client.get(key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        now = time.time()
        if data.get("kind") != kind or now - float(data["created"]) > self._absolute:
            return None
        if now - float(data.get("slid", 0)) > 60:
            data["slid"] = now
            await self._client.set(key, orjson.dumps(data), ex=self._idle, xx=True)
        return Session(
            int(data["sub"]),
            kind,
            str(data.get("login", "")),
            float(data["created"]),
            digest,
            dict(data.get("scope") or {}),
        )

    @staticmethod
    def _subject_key(kind: SessionKind, subject: int) -> str:
        return f"examreg:sessions:{kind}:{subject}"

    @staticmethod
    def _once_key(session: Session, name: str) -> str:
        return f"examreg:once:{session.token_digest}:{name}"

    async def hold_once(
        self, session: Session, name: str, value: dict[str, Any], ttl_seconds: int
    ) -> None:
        """Keep `value` for this session to read once (`take_once`) within `ttl_seconds`.

        What a POST produced and its redirect's GET shows, such as a reset's one-time password:
        a reload repeats the GET, which finds nothing, instead of the POST, which would act again.
        """
        await self._client.set(self._once_key(session, name), orjson.dumps(value), ex=ttl_seconds)

    async def take_once(self, session: Session, name: str) -> dict[str, Any] | None:
        """The value `hold_once` kept for this session, removed in the same step; else None."""
        raw = await self._client.getdel(self._once_key(session, name))
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value

    async def revoke(self, session: Session) -> None:
        await self._revoke_digest(session.kind, session.subject, session.token_digest)

    async def revoke_token(self, kind: SessionKind, subject: int, token: str) -> None:
        """End the session of this token (one just opened, before anyone holds it)."""
        await self._revoke_digest(kind, subject, _digest(token))

    async def _revoke_digest(self, kind: SessionKind, subject: int, digest: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._key(digest))
        pipe.srem(self._subject_key(kind, subject), digest)
        await pipe.execute()

    async def revoke_all(self, kind: SessionKind, subject: int) -> int:
        """End every session of an account (password change or reset); return how many were live.

        Only the digests read are removed from the index, in one transaction with their keys: a
        session opened meanwhile stays listed, so the next revocation still finds it.
        """
        index = self._subject_key(kind, subject)
        digests: Any = await self._client.smembers(index)
        if not digests:
            return 0
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(*(self._key(d) for d in digests))
        pipe.srem(index, *digests)
        removed, _ = await pipe.execute()
        return int(removed)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A password check the throttle let through, already counted against its account and address.

    Settle it with exactly one of `LoginThrottle.failed`, `succeeded` or `abandoned`.
    """

    account_key: str
    address_key: str


def address_bucket(address: str) -> str:
    """What one client address counts as: an IPv4 address, or an IPv6 /64 (one subscriber's
    network, whose hosts a client may rotate through at will)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Growing delays per account, a cap per client address; each check-and-count is atomic.

    Per account (`login_max_failures` free attempts, then `login_delay_seconds` doubling up to
    `login_lockout_seconds` after each further failure): slows a guesser to one try per delay,
    while the rightful owner still gets in once the delay has passed; a refused attempt is not
    counted, so nobody can lock an account beyond the delay. Per address (IPv4, or an IPv6 /64),
    `login_address_max_failures` per `login_address_window_seconds`: sized so a school's computer
    room behind one NAT never meets it while a password spray from one address does. Beyond one
    address, the bounded hashing pool (`PasswordService`) is the global guard.

    Both counters count an attempt when it is let through, before the password is checked (one
    server-side function each, engine/adapters/lua/examreg.lua), so twenty concurrent wrong
    passwords get the free attempts checked and the rest refused.
    """

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._free = settings.login_max_failures
        self._first_ms = round(settings.login_delay_seconds * 1000)
        self._longest_ms = settings.login_lockout_seconds * 1000
        self._address_max = settings.login_address_max_failures
        self._address_window = settings.login_address_window_seconds

    @staticmethod
    def _keys(login: str, address: str) -> tuple[str, str]:
        return (
            f"examreg:throttle:account:{_digest(login)}",
            f"examreg:throttle:address:{_digest(address_bucket(address))}",
        )

    async def attempt(self, login: str, address: str) -> Attempt:
        """Let one password check through (counted), or raise TooManyAttempts with Retry-After."""
        account, address_key = self._keys(login, address)
        pipe = self._client.pipeline(transaction=False)
        pipe.fcall(
            "examreg_throttle_account",
            1,
            account,
            self._free,
            self._first_ms,
            self._longest_ms,
            max(ACCOUNT_MEMORY_SECONDS, self._longest_ms // 500),
        )
        pipe.fcall(
            "examreg_throttle_address", 1, address_key, self._address_max, self._address_window
        )
        account_wait, address_wait = (int(w) for w in await pipe.execute())
        if not account_wait and not address_wait:
            return Attempt(account, address_key)
        # One counter let the attempt through and counted it: take that back, it never happened.
        passed = address_key if account_wait else account
        if not (account_wait and address_wait):
            await self._client.fcall("examreg_throttle_uncount", 1, passed)
        raise TooManyAttempts(retry_after=max(1, -(-max(account_wait, address_wait) // 1000)))

    async def failed(self, attempt: Attempt) -> None:
        """The password was wrong: the account's next delay runs from now."""
        await self._client.fcall("examreg_throttle_failed", 1, attempt.account_key)

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh; the address counts only failures."""
        pipe = self._client.pipeline(transaction=False)
        pipe.delete(attempt.account_key)
        pipe.fcall("examreg_throttle_uncount", 1, attempt.address_key)
        await pipe.execute()

    async def abandoned(self, attempt: Attempt) -> None:
        """No password was checked (the hashing queue was full): the attempt is not counted."""
        pipe = self._client.pipeline(transaction=False)
        pipe.fcall("examreg_throttle_uncount", 1, attempt.account_key)
        pipe.fcall("examreg_throttle_uncount", 1, attempt.address_key)
        await pipe.execute()
