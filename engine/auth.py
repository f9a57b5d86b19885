"""Passwords, sessions and login throttling.

Owns argon2id hashing (never on the event loop, a bounded number at once, shedding past a queue
limit), server-side sessions in Redis (random 128-bit tokens, idle and absolute timeouts), and
per-account / per-address failure counters with lockout. Keys hold digests, never a national ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine import metrics
from engine.errors import Overloaded, TooManyAttempts, WeakPassword
from engine.settings import Settings

SessionKind = Literal["candidate", "staff"]


def make_hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured (OWASP: 19 MiB, 2 passes, 1 lane) parameters."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def check_password_policy(new: str, current: str | None = None) -> None:
    """At least 8 characters with a letter and a digit, at most 128, and not the current one."""
    if (
        len(new) < 8
        or len(new) > 128
        or not any(c.isalpha() for c in new)
        or not any(c.isdigit() for c in new)
        or new == current
    ):
        raise WeakPassword()


# Niceness of the hashing threads: the event loops (nice 0) win the CPU about 10:1 against them.
HASH_THREAD_NICENESS = 10


def _low_cpu_priority() -> None:
    """Thread initializer: hashing threads yield the CPU to the event loops.

    argon2id is CPU-hungry on purpose. At equal priority a login storm's hash threads (several
    per process) take the cores from the event loops and slow every other request: measured with
    loadtest/login_storm.sh on 2 cores, GET /api/v1/me fell from ~560 to ~200 req/s with a p99
    near 1 s. At a lower priority the hashes still use every idle cycle, and the bounded queue
    sheds the excess logins with 503 + Retry-After instead.
    """
    if sys.platform == "linux":  # per-thread niceness; elsewhere the id could name a process
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


class PasswordService:
    """Hash and verify in a thread pool, at most `login_concurrency` at once per process."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = make_hasher(settings)
        self._pool = ThreadPoolExecutor(
            settings.login_concurrency,
            thread_name_prefix="argon2",
            initializer=_low_cpu_priority,
        )
        self._slots = asyncio.Semaphore(settings.login_concurrency)
        self._waiting = 0
        self._queue_limit = settings.login_queue_limit
        self._retry_after = settings.retry_after_seconds
        # Verifying against a real hash for unknown accounts keeps their timing indistinguishable.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    async def _run(self, operation: str, func: object, *args: str) -> object:
        if self._waiting >= self._queue_limit:
            metrics.LOGINS.labels("any", "shed").inc()
            raise Overloaded(retry_after=self._retry_after, extra={"reason": "login_concurrency"})
        self._waiting += 1
        metrics.LOGIN_IN_FLIGHT.inc()
        try:
            async with self._slots:
                started = time.perf_counter()
                loop = asyncio.get_running_loop()
                result: object = await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]
                metrics.PASSWORD_HASH_SECONDS.labels(operation).observe(
                    time.perf_counter() - started
                )
                return result
        finally:
            self._waiting -= 1
            metrics.LOGIN_IN_FLIGHT.dec()

    async def hash(self, password: str) -> str:
        return str(await self._run("hash", self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; unknown accounts (None) cost the same and fail."""
        target = password_hash or self._dummy_hash

        def check() -> bool:
            try:
                return bool(self._hasher.verify(target, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = bool(await self._run("verify", check))
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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
