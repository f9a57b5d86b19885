"""Reconciliation: make Redis stop saying `queued` about what PostgreSQL already holds.

Owns the sweep that releases stale read-your-writes records: a receipt's `rcpt:` marker (and the
latest form) left in a candidate's hash although its version is committed, so the receipt would
answer `queued` forever. The writer settles a batch (release and acknowledge) in one atomic call
after COMMIT, so a crash can no longer leave such a marker; the sweep repairs those that earlier
writers or an incident left behind. Writers run it once at start for their shards, operators run
it on demand with `examreg reconcile`. It must not read a request.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from engine.adapters import backend, metrics, store, streams

log = logging.getLogger("examreg.reconcile")


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep found and repaired."""

    queued: int  # markers seen, still queued or not
    released: int  # of them already persisted, now released


async def release_persisted_markers(
    client: backend.Redis, pool: backend.Pool, shards: Collection[int], *, page: int = 500
) -> SweepResult:
    """Release every queued marker on `shards` whose version PostgreSQL already holds.

    Safe beside live writers and APIs: a version, once committed, stays committed, so releasing
    it is right whenever it happens; markers of versions still in the stream are left alone.
    """
    queued = released = 0
    async for markers in streams.queued_markers(client, shards, page=page):
        queued += len(markers)
        persisted = await store.persisted_versions(
            pool, [(m.candidate_id, m.version) for m in markers]
        )
        stale = [m for m in markers if persisted.get((m.candidate_id, m.version)) == m.receipt_id]
        await streams.release(client, stale)
        released += len(stale)
        metrics.MARKERS_RELEASED.inc(len(stale))
    if released:
        log.warning("released %d stale queued markers of persisted versions", released)
    return SweepResult(queued, released)
