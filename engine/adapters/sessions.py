"""Server-side sessions and login throttling in Redis.

Owns sessions (random 128-bit tokens, idle and absolute timeouts), values a session reads once
(a POST's result, shown by the GET it redirects to) and the login throttle: growing delays per
account, a cap per client address. Keys hold digests, never a national ID.

Key layout:
  examreg:{s}:session:<sha256(token)>       a candidate's session, in its stream shard's slot, so
                                            the submission's server-side function checks it in the
                                            same call as the enqueue (one round trip)
  examreg:{s}:sessions:candidate:<id>       the digests of a candidate's sessions (revocation)
  examreg:{staff}:session:<sha256(token)>   a staff session, and the digests of a staff
  examreg:{staff}:sessions:staff:<id>       member's sessions: one slot for all staff (a few
                                            thousand accounts), so create and revoke stay one
                                            MULTI on a cluster
  examreg:session:<sha256(token)>           before the tagged layouts: a staff session, or a
  examreg:sessions:<kind>:<id>              candidate's whose token has no `<id>.` prefix, and
                                            index; still read, revoked and expired, never written

A candidate's token is `<candidate_id>.<128 random bits>`: the prefix names the shard (and the
keys) before anything is read. It is a claim, not a credential: the session the digest of the whole
token names must exist and belong to that candidate (`candidate_claim`, `examreg_submit`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.adapters.backend import Redis
from engine.errors import TooManyAttempts
from engine.settings import Settings
from engine.types import SessionKind

# How long an account's failures are remembered after the latest one (unless a login succeeds):
# long enough that a patient guesser keeps meeting the longest delay instead of new free tries.
ACCOUNT_MEMORY_SECONDS = 24 * 3600


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def candidate_claim(token: str) -> int | None:
    """The candidate id a candidate token's prefix names (unverified), or None for a token
    without one (staff, or a candidate session opened before the shard-tagged layout)."""
    head, dot, rest = token.partition(".")
    if not dot or not rest or not head.isascii() or not head.isdigit() or len(head) > 12:
        return None
    return int(head)


def claimed_unit(token: str) -> str | None:
    """The registration unit ("PP-SSS") a candidate token names after its candidate id
    (unverified: `examreg_submit` checks it against the session), or None."""
    parts = token.split(".")
    return parts[1] if len(parts) == 3 and parts[1] else None


def candidate_session_key(shard: int, digest: str) -> str:
    return f"examreg:{{{shard}}}:session:{digest}"


def token_digest(token: str) -> str:
    return _digest(token)


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated session, as stored server-side."""

    subject: int  # candidate_id or staff_id
    kind: SessionKind
    login: str  # the national ID (candidates) or username (staff) the session was opened with
    created: float
    token_digest: str
    scope: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # where it is stored (see the key layout above)
    index: str = ""  # the set of its account's session digests


class SessionStore:
    """Server-side sessions: the token is only ever stored as its SHA-256."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        self._client = client
        self._idle = settings.session_idle_seconds
        self._absolute = settings.session_absolute_seconds
        self._shard_of = settings.shard_of

    @property
    def idle_seconds(self) -> int:
        return self._idle

    @property
    def absolute_seconds(self) -> int:
        return self._absolute

    @staticmethod
    def _key(digest: str) -> str:
        """A session key of the layout before hash tags (read and revoked, no longer written)."""
        return f"examreg:session:{digest}"

    @staticmethod
    def _staff_key(digest: str) -> str:
        return f"examreg:{{staff}}:session:{digest}"

    def _keys_of(self, kind: SessionKind, token: str) -> tuple[str, str, int | None]:
        """(session key, digest, claimed subject) of a token; the claim only for candidates."""
        digest = _digest(token)
        if kind == "staff":
            return self._staff_key(digest), digest, None
        claim = candidate_claim(token)
        if claim is None:
            return self._key(digest), digest, None
        return candidate_session_key(self._shard_of(claim), digest), digest, claim

    async def create(
        self, subject: int, kind: SessionKind, login: str, scope: dict[str, Any] | None = None
    ) -> tuple[str, float]:
        """A new random token (rotated at every login) and its absolute expiry (epoch seconds).

        `scope` carries the session's CSRF token and whether a password change is pending; what
        a staff member may do is read from the staff row on every request, never kept here.
        """
        token = secrets.token_urlsafe(16)  # 128 bits
        if kind == "candidate":
            # The claims a submission's one round trip needs before it reads the session: whose
            # shard, and which unit's window (the server-side call verifies both).
            unit = (scope or {}).get("unit")
            token = f"{subject}.{unit}.{token}" if isinstance(unit, str) else f"{subject}.{token}"
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
        key, digest, _ = self._keys_of(kind, token)
        index = self._subject_key(kind, subject)
        # The index lets a password change or reset end every session of the account.
        await self._client.fcall(
            "examreg_session_open", 2, key, index, payload, self._idle, digest, self._absolute
        )
        return token, now + self._absolute

    async def get(self, token: str, kind: SessionKind) -> Session | None:
        key, digest, claim = self._keys_of(kind, token)
        # One read. Every Redis write waits for the AOF fsync, so the sliding idle timeout is
        # pushed forward (a write) at most once a minute, not on every request.
        raw = await self._client.get(key)
        legacy = False
        if raw is None and kind == "staff":
            # A staff session opened before the `{staff}` tag: honoured until it expires.
            key, legacy = self._key(digest), True
            raw = await self._client.get(key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        now = time.time()
        if data.get("kind") != kind or now - float(data["created"]) > self._absolute:
            return None
        if claim is not None and int(data["sub"]) != claim:
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
            key,
            self._legacy_subject_key(kind, int(data["sub"]))
            if legacy or (kind == "candidate" and claim is None)
            else self._subject_key(kind, int(data["sub"])),
        )

    def _subject_key(self, kind: SessionKind, subject: int) -> str:
        if kind == "candidate":
            return f"examreg:{{{self._shard_of(subject)}}}:sessions:candidate:{subject}"
        return f"examreg:{{staff}}:sessions:staff:{subject}"

    @staticmethod
    def _legacy_subject_key(kind: SessionKind, subject: int) -> str:
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
        await self._revoke_key(session.key, session.index, session.token_digest)

    async def revoke_token(self, kind: SessionKind, subject: int, token: str) -> None:
        """End the session of this token (one just opened, before anyone holds it)."""
        key, digest, _ = self._keys_of(kind, token)
        await self._revoke_key(key, self._subject_key(kind, subject), digest)

    async def _revoke_key(self, key: str, index: str, digest: str) -> None:
        await self._end(index, [key], [digest])

    async def _end(self, index: str, keys: list[str], digests: list[str]) -> int:
        """Delete session keys and their digests from the index: one atomic call when they share
        a hash tag (every layout written now). The untagged keys of before spread over slots, so
        on a cluster they cannot be one call; they go one by one, the index last (a crash in
        between leaves a digest of a deleted session in the index, which is harmless)."""
        if index.startswith("examreg:{"):
            return int(
                await self._client.fcall(
                    "examreg_sessions_end", 1 + len(keys), index, *keys, *digests
                )
            )
        removed = 0
        for key in keys:
            removed += int(await self._client.delete(key))
        await self._client.srem(index, *digests)
        return removed

    async def revoke_all(self, kind: SessionKind, subject: int) -> int:
        """End every session of an account (password change or reset); return how many were live.

        Only the digests read are removed from the index, in one atomic call with their keys: a
        session opened meanwhile stays listed, so the next revocation still finds it. A
        candidate's sessions opened before the shard-tagged layout are in the old index.
        """
        if kind == "candidate":
            shard = self._shard_of(subject)
            removed = await self._revoke_listed(
                self._subject_key(kind, subject), lambda d: candidate_session_key(shard, d)
            )
        else:
            removed = await self._revoke_listed(self._subject_key(kind, subject), self._staff_key)
        return removed + await self._revoke_listed(
            self._legacy_subject_key(kind, subject), self._key
        )

    async def _revoke_listed(self, index: str, key_of: Callable[[str], str]) -> int:
        digests: Any = await self._client.smembers(index)
        if not digests:
            return 0
        listed = [str(d) for d in digests]
        return await self._end(index, [key_of(d) for d in listed], listed)


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

    def __init__(self, client: Redis, settings: Settings) -> None:
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
