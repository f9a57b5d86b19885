"""A submission in one Redis round trip (issue 11, items 1 and 3), against the real Valkey.

The candidate's session is checked inside `examreg_submit` (engine/adapters/lua/examreg.lua), in
the same call as the enqueue: an accepted submission sends Valkey one command (watched with
MONITOR), and an expired, revoked or forced session is refused by that call with nothing enqueued.
The leaner records stay readable across the upgrade: an idempotency record written as a hash, a
`latest_form` left in a candidate hash, a session opened before the shard-tagged layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest

from engine.adapters import sessions, streams
from engine.services import candidates
from tests.conftest import Harness
from tests.support import drain, form_for

pytestmark = pytest.mark.anyio

PUT = "/api/v1/me/registration"


@contextlib.asynccontextmanager
async def monitored(url: str) -> AsyncIterator[list[str]]:
    """Every command Valkey runs meanwhile, as MONITOR prints it (`… [0 127.0.0.1:port] "CMD" …`;
    the calls a function makes show as `[0 lua]`)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"MONITOR\r\n")
    assert (await reader.readline()).startswith(b"+OK")
    lines: list[str] = []

    async def collect() -> None:
        while line := await reader.readline():
            lines.append(line.decode(errors="replace"))

    task = asyncio.create_task(collect())
    try:
        yield lines
        await asyncio.sleep(0.3)  # MONITOR's stream trails the commands themselves
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()


def _token(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")


def _session_key(harness: Harness, candidate_id: int, token: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return sessions.candidate_session_key(harness.settings.shard_of(candidate_id), digest)


def _sent(lines: list[str], *names: str) -> list[str]:
    """The commands API clients sent (not those a function ran) that name any of `names`."""
    return [
        line.split('"')[1].upper()
        for line in lines
        if "[0 lua]" not in line and any(name in line for name in names)
    ]


async def _queued(client: Any, harness: Harness) -> int:
    return sum([await client.xlen(streams.stream_key(s)) for s in range(8)])


async def test_an_accepted_submission_sends_valkey_one_command(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    candidate = roster[30]
    cid = candidate["candidate_id"]
    auth = await harness.login(candidate)
    token = _token(auth)
    assert token.startswith(f"{cid}.")
    digest = hashlib.sha256(token.encode()).hexdigest()
    names = (digest, f":cand:{cid}", f":idem:{cid}:")
    assert harness.settings.redis_url is not None
    async with monitored(harness.settings.redis_url) as lines:
        response = await harness.client.put(
            PUT, json=form_for(candidate), headers={**auth, "Idempotency-Key": "one"}
        )
    assert response.status_code == 202, response.text
    assert _sent(lines, *names) == ["FCALL"], lines
    inside = [line for line in lines if "[0 lua]" in line]
    assert any(digest in line and '"get"' in line.lower() for line in inside), (
        "the function did not read the session"
    )
    # The control: a session read the old way costs a GET before the FCALL; the count can fail.
    async with monitored(harness.settings.redis_url) as lines:
        assert await harness.services.sessions.get(token, "candidate") is not None
    assert _sent(lines, *names) == ["GET"]


async def test_a_replay_is_one_command_too(harness: Harness, roster: list[dict[str, Any]]) -> None:
    candidate = roster[31]
    auth = {**await harness.login(candidate), "Idempotency-Key": "again"}
    first = await harness.client.put(PUT, json=form_for(candidate), headers=auth)
    digest = hashlib.sha256(_token(auth).encode()).hexdigest()
    assert harness.settings.redis_url is not None
    async with monitored(harness.settings.redis_url) as lines:
        second = await harness.client.put(PUT, json=form_for(candidate), headers=auth)
    assert second.status_code == 202 and second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert _sent(lines, digest) == ["FCALL"]


@pytest.mark.parametrize("how", ["idle", "absolute", "logout", "password_change", "forged"])
async def test_a_dead_session_is_refused_by_the_submission_itself(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, how: str
) -> None:
    candidate = roster[32]
    cid = candidate["candidate_id"]
    auth = await harness.login(candidate)
    token = _token(auth)
    key = _session_key(harness, cid, token)
    if how == "idle":  # the idle timeout ran out: Valkey expired the key
        await aredis.pexpire(key, 1)
        await asyncio.sleep(0.05)
    elif how == "absolute":  # opened longer ago than the absolute lifetime, still in use
        data = orjson.loads(await aredis.get(key))
        data["created"] = time.time() - harness.settings.session_absolute_seconds - 5
        await aredis.set(key, orjson.dumps(data), keepttl=True)
    elif how == "logout":
        assert (await harness.client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    elif how == "password_change":
        await harness.services.sessions.revoke_all("candidate", cid)  # what a change or reset does
    else:  # another candidate's id in front of this secret: no session has that digest
        other = roster[33]["candidate_id"]
        auth = {"Authorization": f"Bearer {other}.{token.partition('.')[2]}"}
    harness.client.cookies.clear()
    digest = hashlib.sha256(_token(auth).encode()).hexdigest()
    assert harness.settings.redis_url is not None
    async with monitored(harness.settings.redis_url) as lines:
        response = await harness.client.put(
            PUT, json=form_for(candidate), headers={**auth, "Idempotency-Key": "late"}
        )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"
    assert _sent(lines, digest) == ["FCALL"], "refused by another path than the submission's call"
    assert await _queued(aredis, harness) == 0


async def test_a_pending_password_change_is_refused_by_the_submission_itself(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, pool: asyncpg.Pool
) -> None:
    candidate = roster[34]
    await pool.execute(
        "UPDATE candidates SET must_change_password = true WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    auth = await harness.login(candidate)
    harness.client.cookies.clear()
    digest = hashlib.sha256(_token(auth).encode()).hexdigest()
    assert harness.settings.redis_url is not None
    async with monitored(harness.settings.redis_url) as lines:
        response = await harness.client.put(
            PUT, json=form_for(candidate), headers={**auth, "Idempotency-Key": "forced"}
        )
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"
    assert _sent(lines, digest) == ["FCALL"]
    assert await _queued(aredis, harness) == 0


async def test_refusals_before_the_call_still_answer_401_first(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    """A bad body with a dead session is 401 (the session is read first, as before), and with a
    live one the field errors include the roster comparison the function would otherwise make."""
    candidate = roster[35]
    auth = await harness.login(candidate)
    harness.client.cookies.clear()
    other = form_for(candidate, national_id=roster[36]["national_id"])
    mismatch = await harness.client.put(PUT, json=other, headers={**auth, "Idempotency-Key": "m"})
    assert mismatch.status_code == 422
    assert "national_id" in mismatch.text and "mismatch_roster" in mismatch.text
    await harness.services.sessions.revoke_all("candidate", candidate["candidate_id"])
    bad = await harness.client.put(PUT, json={"x": 1}, headers={**auth, "Idempotency-Key": "b"})
    assert bad.status_code == 401
    missing_key = await harness.client.put(PUT, json=form_for(candidate), headers=auth)
    assert missing_key.status_code == 401
    assert await _queued(aredis, harness) == 0


async def test_the_idle_expiry_slides_inside_the_submission(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    candidate = roster[37]
    auth = await harness.login(candidate)
    key = _session_key(harness, candidate["candidate_id"], _token(auth))
    idle = harness.settings.session_idle_seconds
    await aredis.expire(key, idle - 5)  # refreshed 5 s ago: not due (at most once a minute)
    response = await harness.client.put(
        PUT, json=form_for(candidate), headers={**auth, "Idempotency-Key": "s1"}
    )
    assert response.status_code == 202
    assert idle - 10 <= await aredis.ttl(key) <= idle - 5
    await aredis.expire(key, idle - 120)  # refreshed two minutes ago: due
    response = await harness.client.put(
        PUT, json=form_for(candidate, seed=2), headers={**auth, "Idempotency-Key": "s2"}
    )
    assert response.status_code == 202
    assert await aredis.ttl(key) >= idle - 5


async def test_a_session_opened_before_the_upgrade_still_submits_and_is_revoked(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    """The old layout: a token without the `<id>.` prefix, `examreg:session:<digest>`, the
    unsharded index. It takes the session-read path and a password change still ends it."""
    candidate = roster[38]
    cid = candidate["candidate_id"]
    token = "0ldT0kenWithoutAPrefix_abcdefg"
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = time.time()
    payload = {
        "sub": cid,
        "kind": "candidate",
        "created": now,
        "login": candidate["national_id"],
        "slid": now,
        "scope": {"must_change": False},
    }
    await aredis.set(f"examreg:session:{digest}", orjson.dumps(payload), ex=600)
    await aredis.sadd(f"examreg:sessions:candidate:{cid}", digest)
    assert not candidates.fast_path(token)
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": "old"}
    assert harness.settings.redis_url is not None
    async with monitored(harness.settings.redis_url) as lines:
        response = await harness.client.put(PUT, json=form_for(candidate), headers=auth)
    assert response.status_code == 202, response.text
    assert _sent(lines, digest, f":cand:{cid}") == ["GET", "FCALL"]
    assert await harness.services.sessions.revoke_all("candidate", cid) == 1
    response = await harness.client.put(PUT, json=form_for(candidate), headers=auth)
    assert response.status_code == 401


async def test_an_idempotency_record_written_as_a_hash_is_still_honoured(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, pool: asyncpg.Pool
) -> None:
    """Before the upgrade the record was a hash with an EXPIRE; a retry after it replays, and
    another body with its key is refused, exactly as with the new one-string record."""
    candidate = roster[39]
    cid = candidate["candidate_id"]
    shard = harness.settings.shard_of(cid)
    form = form_for(candidate)
    record = streams.idempotency_key(shard, cid, "pre")
    fields = {
        "hash": streams.form_hash(form),
        "version": "1",
        "receipt": "A" * 20,
        "at": "2026-12-01T01:02:03.000004Z",
        "phase": "official",
    }
    await aredis.hset(record, mapping=fields)
    await aredis.expire(record, 600)
    auth = {**await harness.login(candidate), "Idempotency-Key": "pre"}
    replay = await harness.client.put(PUT, json=form, headers=auth)
    assert replay.status_code == 202, replay.text
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["receipt_id"] == "A" * 20 and replay.json()["version"] == 1
    other = await harness.client.put(PUT, json=form_for(candidate, seed=3), headers=auth)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    fresh = await harness.client.put(PUT, json=form, headers={**auth, "Idempotency-Key": "post"})
    assert fresh.status_code == 202
    packed = await aredis.get(streams.idempotency_key(shard, cid, "post"))
    assert packed.split(" ")[0] == streams.form_hash(form)
    assert await aredis.ttl(streams.idempotency_key(shard, cid, "post")) > 0
    assert "latest_form" not in await aredis.hgetall(streams.candidate_key(shard, cid))


async def test_a_latest_form_left_from_before_is_never_read_and_goes_on_release(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any, pool: asyncpg.Pool
) -> None:
    candidate = roster[10]
    cid = candidate["candidate_id"]
    shard = harness.settings.shard_of(cid)
    auth = await harness.login(candidate)
    form = form_for(candidate)
    response = await harness.client.put(PUT, json=form, headers={**auth, "Idempotency-Key": "f"})
    assert response.status_code == 202
    stale = orjson.dumps({"full_name": "stale copy"}).decode()
    await aredis.hset(streams.candidate_key(shard, cid), "latest_form", stale)
    read = (await harness.client.get(PUT, headers=auth)).json()
    assert read["status"] == "queued" and read["form"]["full_name"] == form["full_name"]
    await drain(harness.settings, pool, aredis)
    assert "latest_form" not in await aredis.hgetall(streams.candidate_key(shard, cid))
    read = (await harness.client.get(PUT, headers=auth)).json()
    assert read["status"] == "persisted" and read["form"]["full_name"] == form["full_name"]


async def test_read_your_writes_when_the_entry_is_trimmed_between_the_reads(
    harness: Harness,
    roster: list[dict[str, Any]],
    aredis: Any,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer commits, acknowledges and trims between the Redis read of the latest record and
    the database read: the entry is gone, so PostgreSQL answers, and it holds the version."""
    candidate = roster[11]
    auth = await harness.login(candidate)
    form = form_for(candidate)
    response = await harness.client.put(PUT, json=form, headers={**auth, "Idempotency-Key": "t"})
    assert response.status_code == 202
    original = streams.latest_record

    async def latest_record_then_drain(*args: Any, **kwargs: Any) -> Any:
        record = await original(*args, **kwargs)
        await drain(harness.settings, pool, aredis)
        return record

    monkeypatch.setattr(streams, "latest_record", latest_record_then_drain)
    monkeypatch.setattr(
        candidates.store, "registration", _stale_once(candidates.store.registration)
    )
    read = (await harness.client.get(PUT, headers=auth)).json()
    assert read["status"] == "persisted" and read["version"] == 1
    assert read["form"]["full_name"] == form["full_name"]


def _stale_once(real: Any) -> Any:
    """The database read as it was before the commit (nothing yet), then the real one."""
    calls = 0

    async def registration(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await real(*args, **kwargs)

    return registration


async def test_an_old_process_call_still_works_and_an_old_library_fails_closed(
    harness: Harness, roster: list[dict[str, Any]], aredis: Any
) -> None:
    """Rolling upgrade, both ways: an API process of the previous version calls `examreg_submit`
    with three keys and nine arguments, which the new library still serves; and should an old
    process load its library (no `examreg_submit_v2`) after a new one, the new processes'
    submissions are refused 503 with nothing enqueued, never enqueued without the session check."""
    candidate = roster[12]
    cid = candidate["candidate_id"]
    shard = harness.settings.shard_of(cid)
    form = form_for(candidate)
    old_call = await aredis.fcall(
        "examreg_submit",
        3,
        streams.stream_key(shard),
        streams.candidate_key(shard, cid),
        streams.idempotency_key(shard, cid, "old-api"),
        str(cid), "old-api", streams.form_hash(form), "B" * 20, "2026-12-02T00:00:00.000000Z",
        "official", orjson.dumps(form).decode(), "600", "0",
    )  # fmt: skip
    assert old_call[0] == "new" and int(old_call[1]) == 1
    auth = await harness.login(candidate)
    library = streams._LUA.read_text()
    assert "register_function('examreg_submit_v2'" in library
    older = library.replace("redis.register_function('examreg_submit_v2', submit)", "")
    await aredis.function_load(older, replace=True)
    try:
        response = await harness.client.put(
            PUT, json=form, headers={**auth, "Idempotency-Key": "during"}
        )
    finally:
        await streams.load_functions(aredis)
    assert response.status_code == 503 and response.json()["code"] == "unavailable"
    assert await _queued(aredis, harness) == 1  # the old process's entry alone
    again = await harness.client.put(PUT, json=form, headers={**auth, "Idempotency-Key": "during"})
    assert again.status_code == 202 and again.json()["version"] == 2
