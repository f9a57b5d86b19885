"""The lock report: what was accepted up to the national close, stored and still queued.

Owns `examreg lock report` and `GET /api/v1/ops/lock` (issue 14 item 3). At the national close
("khóa chức năng ĐKDT", domain.md §6.1) Redis refuses every submission whose deadline has passed
(the instant is judged inside the enqueue, see `lua/examreg.lua`), the writers go on draining,
and this report says, from PostgreSQL, how many candidates and versions of each province were
accepted before the instant, how many versions came after it (reopened candidates), and what is
still in the streams (waiting, pending, dead-lettered): the lock's count is final once nothing
is queued. Running it is audited. It must not print: the CLI and the endpoint render it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.adapters import backend, calendar_store, queue_census, streams
from engine.services.calendar_changes import audit_change
from engine.services.window import Actor, CalendarCache

# The queued entries read one by one for their provinces; past this the report gives the totals
# per shard only (a backlog that large at the lock is its own emergency: see the runbook).
CENSUS_LIMIT = 200_000


async def report(
    pool: backend.Pool,
    redis: backend.Redis,
    shards: int,
    cache: CalendarCache,
    actor: Actor,
) -> dict[str, Any]:
    """The lock report as JSON-ready data (instants in ISO 8601 UTC); audited (`lock_report`)."""
    calendar = await cache.refresh()
    lock_at = calendar.national.closes_at
    now = datetime.now(UTC)
    facts = await streams.read_shards(redis, shards)
    by_shard = [
        {"shard": f.shard, "waiting": f.lag, "pending": f.pending, "dead_letters": f.dead_letters}
        for f in facts
    ]
    queued = sum(s["waiting"] + s["pending"] for s in by_shard)
    dead = sum(s["dead_letters"] for s in by_shard)
    census, complete = (
        await queue_census.queued_candidates(redis, shards, CENSUS_LIMIT) if queued else ([], True)
    )
    async with pool.acquire() as conn, conn.transaction():
        provinces = await calendar_store.accepted_by_province(conn, lock_at)
        queued_provinces = await calendar_store.provinces_of(conn, census)
        after = await calendar_store.versions_since(conn, lock_at) if lock_at else 0
        body: dict[str, Any] = {
            "lock_at": lock_at.isoformat() if lock_at else None,
            "at": now.isoformat(),
            "locked": lock_at is not None and now >= lock_at,
            "stored": {
                "candidates": sum(int(p["candidates"]) for p in provinces),
                "versions": sum(int(p["versions"]) for p in provinces),
                "by_province": provinces,
            },
            "stored_after_lock": after,
            "queued": {
                "entries": queued,
                "dead_letters": dead,
                "by_shard": by_shard,
                "by_province": [
                    {"province_code": code, "entries": n} for code, n in queued_provinces.items()
                ],
                "by_province_complete": complete,
            },
            "open_reopens": len(calendar.active_reopens(now)),
            "final": lock_at is not None and now >= lock_at and queued == 0 and dead == 0,
        }
        await audit_change(
            conn,
            actor,
            "lock_report",
            None,
            {
                "lock_at": body["lock_at"],
                "stored_versions": body["stored"]["versions"],
                "queued": queued,
                "dead_letters": dead,
            },
        )
    return body


def render(body: dict[str, Any]) -> str:
    """The report as an operator reads it in a terminal."""
    lines = [
        f"lock at      {body['lock_at'] or 'not set (no national close)'}",
        f"report at    {body['at']}  ({'locked' if body['locked'] else 'not locked yet'})",
        f"stored       {body['stored']['candidates']:,} candidates, "
        f"{body['stored']['versions']:,} versions accepted before the lock",
    ]
    q = body["queued"]
    waiting = {p["province_code"]: p["entries"] for p in q["by_province"]}
    for p in body["stored"]["by_province"]:
        lines.append(
            f"  province {p['province_code']}  {int(p['candidates']):>9,} candidates"
            f"  {int(p['versions']):>9,} versions  last {p['last_accepted_at']}"
            f"  + {waiting.pop(p['province_code'], 0):,} queued"
        )
    for code, n in sorted(waiting.items()):
        lines.append(f"  province {code}  {0:>9,} candidates  {0:>9,} versions  + {n:,} queued")
    lines.append(f"after lock   {body['stored_after_lock']:,} versions (reopened candidates)")
    lines.append(
        f"queued       {q['entries']:,} entries still in the streams, "
        f"{q['dead_letters']:,} dead-lettered"
    )
    lines.append(f"reopens      {body['open_reopens']} open")
    if body["final"]:
        verdict = "yes: everything accepted before the lock is in PostgreSQL"
    elif not body["locked"]:
        verdict = "no: the lock has not passed"
    elif q["entries"]:
        verdict = "no: the writers are still draining"
    else:
        verdict = "no: dead letters wait for a replay (examreg dead-letters list)"
    lines.append(f"final        {verdict}")
    return "\n".join(lines)
