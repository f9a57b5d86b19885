"""Server-side sessions and login throttling in Redis.

Owns sessions (random 128-bit tokens, idle and absolute timeouts) and the per-account /
per-address failure counters with lockout. Keys hold digests, never a national ID.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from engine.errors import TooManyAttempts
from engine.settings import Settings
from engine.types import SessionKind


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


class LoginThrottle:
    """Counts failures per account and per client address; past the limit, locks out for a while."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._max = settings.login_max_failures
        self._address_max = settings.login_max_failures * 10
        self._window = settings.login_lockout_seconds

    def _keys(self, login: str, address: str) -> tuple[str, str]:
        return (
            f"examreg:throttle:acct:{_digest(login)}",
            f"examreg:throttle:addr:{_digest(address)}",
        )

    async def check(self, login: str, address: str) -> None:
        """Raise TooManyAttempts (with Retry-After) when either counter is over its limit."""
        account, addr = self._keys(login, address)
        pipe = self._client.pipeline(transaction=False)
        pipe.get(account)
        pipe.ttl(account)
        pipe.get(addr)
        pipe.ttl(addr)
        acct_count, acct_ttl, addr_count, addr_ttl = await pipe.execute()
        if acct_count is not None and int(acct_count) >= self._max:
            raise TooManyAttempts(retry_after=max(1, int(acct_ttl)))
        if addr_count is not None and int(addr_count) >= self._address_max:
            raise TooManyAttempts(retry_after=max(1, int(addr_ttl)))

    async def failed(self, login: str, address: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in self._keys(login, address):
            pipe.incr(key)
            pipe.expire(key, self._window, nx=True)
        await pipe.execute()

    async def succeeded(self, login: str) -> None:
        await self._client.delete(self._keys(login, "")[0])
