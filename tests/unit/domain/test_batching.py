"""Writer batching: small batches and no linger when idle, large ones when behind (pure)."""

from __future__ import annotations

import pytest

from engine.domain.batching import BatchPolicy, BatchSizer, Plan

POLICY = BatchPolicy(min_size=50, max_size=2000, max_linger_ms=50)


def test_an_idle_shard_reads_a_small_batch_and_does_not_linger() -> None:
    assert POLICY.plan(0) == Plan(50, 0.0)


def test_size_and_linger_grow_with_the_backlog_up_to_their_bounds() -> None:
    plans = [POLICY.plan(backlog) for backlog in (0, 10, 100, 500, 1000, 2000, 50_000)]
    sizes = [p.size for p in plans]
    lingers = [p.linger_seconds for p in plans]
    assert sizes == sorted(sizes) and lingers == sorted(lingers)
    assert sizes == [50, 50, 200, 1000, 2000, 2000, 2000]
    assert lingers[2] == pytest.approx(0.0025)
    assert lingers[-2] == lingers[-1] == pytest.approx(0.05)


def test_a_full_read_doubles_the_estimate_and_a_short_one_resets_it() -> None:
    sizer = BatchSizer(POLICY)
    sizes = []
    for _ in range(7):  # behind: every read comes back full
        plan = sizer.plan()
        sizes.append(plan.size)
        sizer.read(plan.size, plan.size)
    assert sizes == [50, 200, 800, 2000, 2000, 2000, 2000]
    sizer.read(2000, 3)  # caught up: three entries were left
    assert sizer.plan() == Plan(50, pytest.approx(0.05 * 3 / 2000))


def test_valkeys_count_replaces_the_estimate() -> None:
    sizer = BatchSizer(POLICY)
    sizer.reported(750)
    assert sizer.plan().size == 1500
    sizer.reported(-1)  # never negative
    assert sizer.plan() == Plan(50, 0.0)


def test_a_policy_whose_bounds_cross_is_refused() -> None:
    with pytest.raises(ValueError, match="min_size"):
        BatchPolicy(min_size=100, max_size=10, max_linger_ms=0)
    with pytest.raises(ValueError, match="linger"):
        BatchPolicy(min_size=1, max_size=10, max_linger_ms=-1)


PACED = BatchPolicy(min_size=50, max_size=2000, max_linger_ms=50, pace_ms=250)


def test_the_first_entry_after_a_quiet_spell_is_taken_at_once() -> None:
    sizer = BatchSizer(PACED)
    assert sizer.linger(sizer.plan(), now=100.0) == 0.0  # never read before
    sizer.read(50, 1, now=100.0)
    # The last batch was 7 s ago: only the backlog's linger (one entry's worth: 25 µs) is left.
    assert sizer.linger(sizer.plan(), now=107.0) == pytest.approx(0.05 / 2000)


def test_a_steady_stream_is_taken_in_slices_of_the_pace() -> None:
    sizer = BatchSizer(PACED)
    sizer.read(50, 3, now=10.0)
    # The next entry arrives 8 ms after that batch was taken: it waits for the rest of the slice.
    assert sizer.linger(sizer.plan(), now=10.008) == pytest.approx(0.242)
    sizer.read(50, 30, now=10.25)
    assert sizer.linger(sizer.plan(), now=10.3) == pytest.approx(0.2)


def test_pacing_never_shortens_the_backlogs_linger_and_a_read_of_nothing_does_not_count() -> None:
    sizer = BatchSizer(BatchPolicy(min_size=50, max_size=2000, max_linger_ms=500, pace_ms=100))
    sizer.read(4000, 0, now=5.0)  # an empty read takes no batch
    assert sizer.last_taken is None
    sizer.read(4000, 100, now=5.0)
    sizer.reported(2000)  # the backlog's linger (500 ms) is longer than the pace's 90 ms left
    assert sizer.linger(sizer.plan(), now=5.01) == pytest.approx(0.5)


def test_without_a_pace_only_the_backlog_decides() -> None:
    sizer = BatchSizer(POLICY)
    sizer.read(50, 3, now=1.0)
    assert sizer.linger(sizer.plan(), now=1.001) == pytest.approx(0.05 * 3 / 2000)


def test_a_negative_pace_is_refused() -> None:
    with pytest.raises(ValueError, match="pace"):
        BatchPolicy(min_size=1, max_size=10, max_linger_ms=0, pace_ms=-1)
