"""Writer batching: how many entries a writer asks for, and how long it lingers, from its backlog.

Pure (no IO, no clock): the writer tells `BatchSizer` what each read returned and, about once a
second, the backlog Valkey reported for its shard; the sizer answers with the next `Plan`.

Idle, a read returns the one or two entries that wait, at once, and they are committed without a
linger: the lowest accept-to-persist latency. As the backlog grows, so do the batch asked for and
the linger that fills a short read, so each PostgreSQL commit and each Valkey settle carries more
entries and the writer spends less CPU per row. Behind, every read is a full batch of the largest
size, and a full read never lingers.

Pacing: under a steady stream the backlog stays small (the writer keeps up), so the backlog alone
would commit every few milliseconds a handful of rows, each commit costing the writer, PostgreSQL
and Valkey a fixed share of CPU that the API then lacks: on the shared 2-core machine, in the
season's closed loop, that was 550 µs of CPU per row against 80 µs in a full batch. So a shard's
reads are also at least `pace_ms` apart: a short read lingers until `pace_ms` after the previous
one was taken. The first entry after a quiet spell (the previous read longer ago than the pace)
is committed at once, a stream is committed in `pace_ms` slices, and a full read never waits.
The entries wait meanwhile in Valkey, fsynced and readable by their candidate (read-your-writes),
which is what the queue is for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    """The next read: ask for `size` entries; if fewer come, wait `linger_seconds` for more."""

    size: int
    linger_seconds: float


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """The bounds: batches of `min_size` to `max_size` entries, lingers of 0 to `max_linger_ms`;
    a shard's reads at least `pace_ms` apart unless they come back full."""

    min_size: int
    max_size: int
    max_linger_ms: int
    pace_ms: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError("batch sizes must satisfy 1 <= min_size <= max_size")
        if self.max_linger_ms < 0:
            raise ValueError("max_linger_ms must not be negative")
        if self.pace_ms < 0:
            raise ValueError("pace_ms must not be negative")

    def plan(self, backlog: int) -> Plan:
        """The read for a shard with `backlog` entries waiting (never delivered or pending).

        The size covers the backlog twice over (what waits, and what arrives while it commits),
        within the bounds. The linger grows in proportion to the backlog, reaching its largest
        when the backlog fills the largest batch: nothing waits long at a trickle, and a steady
        stream is gathered into batches worth a commit.
        """
        backlog = max(0, backlog)
        size = min(self.max_size, max(self.min_size, 2 * backlog))
        share = min(1.0, backlog / self.max_size)
        return Plan(size, self.max_linger_ms * share / 1000)


class BatchSizer:
    """The writer's running estimate of its shard's backlog, and the plan it implies."""

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self.backlog = 0
        self.last_taken: float | None = None  # when the previous batch was taken (monotonic s)

    def plan(self) -> Plan:
        return self.policy.plan(self.backlog)

    def linger(self, plan: Plan, now: float) -> float:
        """Seconds a short read taken at `now` waits for more: the backlog's linger, or until
        `pace_ms` after the previous batch was taken, whichever is longer."""
        if self.last_taken is None:
            return plan.linger_seconds
        paced = self.policy.pace_ms / 1000 - (now - self.last_taken)
        return max(plan.linger_seconds, paced)

    def read(self, asked: int, got: int, now: float | None = None) -> None:
        """A read asked for `asked` entries and `got` came (taken at `now`): a full read means
        more wait (at least as many again: the estimate doubles), a short one that the writer
        has caught up."""
        if got and now is not None:
            self.last_taken = now
        if got >= asked:
            self.backlog = max(self.backlog, 2 * got)
        else:
            self.backlog = got

    def reported(self, backlog: int) -> None:
        """Valkey's own count for the shard (entries never delivered plus pending)."""
        self.backlog = max(0, backlog)
