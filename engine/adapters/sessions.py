"""Server-side sessions and login throttling in Redis.

Owns sessions (random 128-bit tokens, idle and absolute timeouts), values a session reads once
(a POST's result, shown by the GET it redirects to) and the per-account / per-address failure
counters with lockout. Keys hold digests, never a national ID.
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

        `scope` carries what a staff session is allowed (role, school) for the session's life.
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
        pipe.sadd(index, digest)  # lets a password reset revoke every session of the account
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
        await self._client.delete(self._key(session.token_digest))
        await self._client.srem(
            self._subject_key(session.kind, session.subject), session.token_digest
        )

    async def revoke_all(self, kind: SessionKind, subject: int) -> int:
        """End every session of an account (password reset); return how many were live."""
        index = self._subject_key(kind, subject)
        digests: Any = await self._client.smembers(index)
        if not digests:
            return 0
        removed = int(await self._client.delete(*(self._key(d) for d in digests)))
        await self._client.delete(index)
        return removed


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
