"""PostgreSQL for reconciliation: the stored versions of a page of candidates, and every current
row through a server-side cursor.

Owns the SQL `examreg reconcile` runs (issue 14 item 4), beside live writers: one indexed lookup
per page of candidates (history rows, the current row, what the trial purge voided) and a cursor
over `registrations` fetched in chunks, so memory stays flat over 1.2 million rows. Read-only.
It must not know about Redis; the pool is `engine.adapters.store`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg

from engine.domain.reconciliation import StoredFacts

_STORED = """
SELECT c.id AS candidate_id,
       (SELECT array_agg(v.version ORDER BY v.version) FROM registration_versions v
        WHERE v.candidate_id = c.id) AS versions,
       (SELECT array_agg(v.receipt_id ORDER BY v.version) FROM registration_versions v
        WHERE v.candidate_id = c.id) AS receipts,
       (SELECT r.version FROM registrations r WHERE r.candidate_id = c.id) AS current,
       (SELECT array_agg(p.version) FROM trial_purged_versions p
        WHERE p.candidate_id = c.id) AS purged
FROM unnest($1::bigint[]) AS c (id)
"""


async def stored(pool: asyncpg.Pool, candidate_ids: Sequence[int]) -> dict[int, StoredFacts]:
    """What PostgreSQL holds for each of these candidates (one round trip, index lookups)."""
    if not candidate_ids:
        return {}
    rows = await pool.fetch(_STORED, list(candidate_ids))
    return {
        r["candidate_id"]: StoredFacts(
            dict(zip(r["versions"] or (), r["receipts"] or (), strict=True)),
            r["current"],
            frozenset(r["purged"] or ()),
        )
        for r in rows
    }


async def current_rows(
    pool: asyncpg.Pool, chunk: int = 5000
) -> AsyncIterator[list[tuple[int, int]]]:
    """Every (candidate_id, current version), `chunk` rows at a time (a server-side cursor in a
    read-only transaction: the rows stream, they are never all in memory)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor("SELECT candidate_id, version FROM registrations")
        while True:
            rows = await cursor.fetch(chunk)
            if not rows:
                return
            yield [(r[0], r[1]) for r in rows]
