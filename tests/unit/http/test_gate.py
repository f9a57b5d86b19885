"""The overload gate's decisions (pure, an injected clock): CoDel's standing-queue test on the
event loop's queueing delay, the hard lag bound and the in-flight ceiling."""

from __future__ import annotations

import pytest

from engine.http.gate import Gate, LoopLag, QueueDelay
from engine.settings import SettingsError, load

STEP = 1 / 16  # seconds between samples: exact in binary, so the clock adds up exactly


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _delay(clock: Clock, target: float = 0.05, interval: float = 0.5) -> QueueDelay:
    return QueueDelay(target, interval, clock=clock)


def _feed(delay: QueueDelay, clock: Clock, value: float, seconds: float, every: float) -> None:
    """Samples of `value` spanning `seconds`, `every` seconds apart: the first one now."""
    for i in range(round(seconds / every) + 1):
        clock.now += every if i else 0.0
        delay.record(value)


def test_a_burst_shorter_than_the_interval_is_absorbed() -> None:
    clock = Clock()
    delay = _delay(clock)
    _feed(delay, clock, 0.3, 0.4375, STEP)  # far above the target, but for less than 0.5 s
    assert not delay.standing
    clock.now += 0.6
    delay.record(0.01)
    clock.now += STEP
    _feed(delay, clock, 0.3, 0.4375, STEP)  # a second burst later starts a fresh interval
    assert not delay.standing


def test_a_delay_above_target_for_an_interval_stands_until_a_sample_is_back_below() -> None:
    clock = Clock()
    delay = _delay(clock)
    _feed(delay, clock, 0.06, 0.4375, STEP)
    assert not delay.standing
    clock.now += STEP
    delay.record(0.06)  # 0.5 s of samples all above 50 ms: their minimum too
    assert delay.standing
    clock.now += STEP
    _feed(delay, clock, 0.2, 1.0, STEP)
    assert delay.standing
    delay.record(0.05)  # at the target is not above it
    assert not delay.standing


def test_one_sample_below_target_inside_the_interval_restarts_it() -> None:
    clock = Clock()
    delay = _delay(clock)
    for _ in range(20):  # 10 s above the target, but a dip below it every 0.5 s: no minimum above
        clock.now += STEP
        _feed(delay, clock, 0.4, 0.375, STEP)
        clock.now += STEP
        delay.record(0.0)
        assert not delay.standing


def test_a_queue_that_stands_again_soon_after_is_refused_at_once() -> None:
    clock = Clock()
    delay = _delay(clock)
    _feed(delay, clock, 0.1, 0.5, STEP)
    assert delay.standing
    clock.now += STEP
    delay.record(0.0)  # shedding drained the queue for a moment
    clock.now += 0.1
    delay.record(0.1)  # the overload is still there: no fresh interval of queueing
    assert delay.standing
    clock.now += STEP
    delay.record(0.0)
    clock.now += 0.6  # longer than the interval: the memory is gone
    delay.record(0.1)
    assert not delay.standing


def test_queue_delay_needs_positive_parameters() -> None:
    with pytest.raises(ValueError, match="positive"):
        QueueDelay(0, 0.5)


def _gate(clock: Clock, max_inflight: int = 512) -> Gate:
    lag = LoopLag(0.25, delay=_delay(clock))
    return Gate(max_inflight, lag, retry_after=5)


def test_the_gate_names_its_cause_queue_delay_before_lag_before_the_ceiling() -> None:
    clock = Clock()
    gate = _gate(clock, max_inflight=2)
    assert gate.cause is None and not gate.busy
    gate.inflight = 2
    assert gate.cause == "in_flight"
    for _ in range(3):
        gate.lag.record(0.3)  # three samples past the hard bound, no time passing
    assert gate.cause == "loop_lag"
    for _ in range(10):
        clock.now += 0.1
        gate.lag.record(0.3)
    assert gate.cause == "queue_delay"
    gate.lag.record(0.001)
    gate.inflight = 0
    assert gate.cause is None


def test_many_requests_in_flight_with_an_idle_loop_are_not_shed() -> None:
    """What a Valkey fsync stall looks like: hundreds of requests waiting, the loop on time."""
    clock = Clock()
    gate = _gate(clock)
    gate.inflight = 300
    for _ in range(50):
        clock.now += 0.02
        gate.lag.record(0.001)
    assert gate.cause is None


def test_a_refusal_is_a_polite_503_with_a_jittered_retry_after() -> None:
    gate = _gate(Clock())
    waits = {gate.refusal("queue_delay").retry_after for _ in range(200)}
    refusal = gate.refusal("in_flight")
    assert refusal.status == 503 and refusal.code == "overloaded"
    assert refusal.extra == {"reason": "busy"}
    assert min(waits) >= 5 and max(waits) <= 8 and len(waits) > 1


def test_the_gate_is_built_from_the_settings() -> None:
    settings = load(
        env={
            "EXAMREG_GATE_TARGET_DELAY_MS": "20",
            "EXAMREG_GATE_INTERVAL_MS": "1000",
            "EXAMREG_MAX_INFLIGHT_REQUESTS": "100",
        }
    )
    gate = Gate.from_settings(settings)
    assert gate.max_inflight == 100
    assert gate.lag.delay is not None
    assert (gate.lag.delay.target, gate.lag.delay.interval) == (0.02, 1.0)
    defaults = load(env={})
    assert (defaults.gate_target_delay_ms, defaults.gate_interval_ms) == (50, 500)
    assert defaults.max_inflight_requests == 512


@pytest.mark.parametrize(
    ("name", "value"), [("EXAMREG_GATE_TARGET_DELAY_MS", "0"), ("EXAMREG_GATE_INTERVAL_MS", "5")]
)
def test_gate_settings_out_of_range_are_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env={name: value})
