"""The middleware in front of every route: request metrics, security headers, the overload gate.

Owns counting and timing requests by route template, the opt-in anonymised arrival log, the
event-loop lag sampler and the per-process overload gate: handlers `admit` a request once it has
a session and a complete body, and `/api/` requests are shed with 503 `overloaded` while this
process's queueing delay stands above its target (`QueueDelay`, CoDel's rule), its event loop
runs far behind, or its hard in-flight ceiling is reached. It must not know what any route does.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.adapters import metrics
from engine.domain import capacity
from engine.errors import Overloaded
from engine.http.responses import api_language, problem
from engine.settings import Settings


def route_name(scope: Scope) -> str:
    """The matched route's template (never the path: it may carry an ID), or `unmatched`."""
    route = scope.get("route")
    return getattr(route, "path", "unmatched")


class ArrivalLog:
    """Opt-in (`EXAMREG_ARRIVAL_LOG`) anonymised arrivals, replayed by loadtest/locust_openloop.py.

    One line per request: epoch seconds, method, route template, status; never a path, query,
    header or body, so no personal data. Each process appends to `<path>.<pid>` through a 256 KiB
    buffer flushed about once a second and at shutdown: the request path pays a string format.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: TextIO | None = None
        self._flushed = 0.0

    def append(self, method: str, route: str, status: int) -> None:
        now = time.time()
        if self._file is None:
            self._file = open(f"{self._path}.{os.getpid()}", "a", buffering=262_144)  # noqa: SIM115
        self._file.write(f"{now:.3f}\t{method}\t{route}\t{status}\n")
        if now - self._flushed >= 1.0:
            self._flushed = now
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class QueueDelay:
    """CoDel's test for a standing queue (RFC 8289), on samples of this process's queueing delay.

    A queue that a burst builds and the process drains within `interval` is what a queue is for:
    nothing is refused. A queueing delay that has stayed above `target` for a whole `interval`
    (every sample above it, so its minimum too) is a standing queue: arrivals exceed what the
    process serves, and the excess must be refused. `standing` holds from then until a sample is
    back at or below `target`; a delay that climbs above `target` again within `interval` of that
    stands at once (CoDel's memory of a recent drop state), so a sustained overload does not buy
    a fresh `interval` of queueing after every respite that shedding itself bought.

    Pure: the clock is injected, samples come from `record`.
    """

    def __init__(
        self, target: float, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if target <= 0 or interval <= 0:
            raise ValueError("target and interval must be positive")
        self.target = target
        self.interval = interval
        self._clock = clock
        self._above_since: float | None = None  # first sample of the current run above target
        self._left_at: float | None = None  # when the last standing state ended
        self.standing = False

    def record(self, delay: float) -> None:
        now = self._clock()
        if delay <= self.target:
            if self.standing:
                self.standing = False
                self._left_at = now
            self._above_since = None
            return
        if self._above_since is None:
            self._above_since = now
            recent = self._left_at is not None and now - self._left_at < self.interval
            self.standing = self.standing or recent
        if now - self._above_since >= self.interval:
            self.standing = True


class LoopLag:
    """How late this process's event loop runs a short timer: its queueing delay, measured.

    Every callback that is ready (a request's next step, a new connection's first read) waits
    behind the ones queued before it; a timer that should fire every `interval` seconds fires
    late by exactly that wait. Each sample feeds `delay` (the CoDel test, when configured), and
    `saturated` holds once `samples` consecutive samples are each later than `limit` seconds: the
    hard bound on lag whatever `delay` is tuned to, so a single stall (a collection, a slow
    import) sheds nothing while a loop that stays seconds behind does.
    """

    def __init__(
        self,
        limit: float,
        samples: int = 3,
        interval: float = 0.02,
        delay: QueueDelay | None = None,
    ) -> None:
        self.limit = limit
        self.samples = samples
        self.interval = interval
        self.delay = delay
        self.lag = 0.0
        self._late = 0

    @property
    def saturated(self) -> bool:
        return self.limit > 0 and self._late >= self.samples

    @property
    def standing(self) -> bool:
        """Whether the queueing delay has stood above its target for an interval (`QueueDelay`)."""
        return self.delay is not None and self.delay.standing

    def record(self, lag: float) -> None:
        self.lag = lag
        self._late = self._late + 1 if lag > self.limit else 0
        if self.delay is not None:
            self.delay.record(lag)
        metrics.API_EVENT_LOOP_LAG.set(lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.record(max(0.0, loop.time() - started - self.interval))


ShedCause = Literal["queue_delay", "loop_lag", "in_flight"]


class Gate:
    """The per-process overload gate: how many admitted requests are under way, and whether a
    new `/api/` request must be shed (503 `overloaded`), and why.

    The primary signal is the measured queueing delay (`LoopLag.standing`: CoDel's test), not a
    count: requests waiting for Valkey's fsync or for PostgreSQL cost the event loop nothing, and
    a burst of them during a 100 ms fsync stall is served once the stall ends; only a delay that
    stands above its target for an interval means the process cannot serve what arrives.
    `max_inflight` stays as a hard ceiling on work under way (memory, connections), high enough
    that a stall at full rate stays below it.

    A request is admitted (`admit`) by its handler once it has a session and its whole body, so
    only work the server is really doing counts: a client that opens a request and stalls, with
    or without a login, holds no slot (issue 12). The middleware sheds at arrival, before any
    session or body is read; `admit` sheds again at admission, as requests that arrived together
    may have filled the gate meanwhile.
    """

    def __init__(self, max_inflight: int, lag: LoopLag, retry_after: int) -> None:
        self.max_inflight = max_inflight
        self.lag = lag
        self.retry_after = retry_after
        self.inflight = 0
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        """The gate and its lag sampler as configured (`EXAMREG_GATE_*`, `EXAMREG_MAX_*`)."""
        delay = QueueDelay(settings.gate_target_delay_ms / 1000, settings.gate_interval_ms / 1000)
        lag = LoopLag(settings.max_event_loop_lag_ms / 1000, delay=delay)
        return cls(settings.max_inflight_requests, lag, settings.retry_after_seconds)

    @property
    def cause(self) -> ShedCause | None:
        """Why a new `/api/` request would be shed now, or None when it is welcome."""
        if self.lag.standing:
            return "queue_delay"
        if self.lag.saturated:
            return "loop_lag"
        if self.max_inflight > 0 and self.inflight >= self.max_inflight:
            return "in_flight"
        return None

    @property
    def busy(self) -> bool:
        return self.cause is not None

    def refusal(self, cause: ShedCause) -> Overloaded:
        """503 `overloaded`, with a jittered `Retry-After` so the retries do not arrive at once."""
        metrics.API_REQUESTS_SHED.labels(cause).inc()
        wait = capacity.retry_after(
            excess=0.0, drain_rate=None, floor=self.retry_after, rng=self._rng
        )
        return Overloaded(retry_after=wait, extra={"reason": "busy"})


_ADMITTED = "examreg.admitted"


def gated(path: str) -> bool:
    """Whether the gate applies to `path` (see `_UNGATED`)."""
    return path not in _UNGATED and not path.startswith("/static/")


def admit(request: Request, *, shed: bool = True) -> None:
    """Count this request as in flight until its answer is sent (the middleware releases it).

    Call it once the caller is authenticated and the body is read. API handlers shed (raise
    503 `overloaded`) when the gate is busy; pages pass `shed=False`: they are counted but never
    refused here, their handlers keep the candidate's typed form on the friendly retry page.

    Raises:
        Overloaded: `shed` and the gate is busy.
    """
    scope = request.scope
    gate: Gate = request.app.state.gate
    if scope.get(_ADMITTED) or not gated(scope["path"]):
        return
    cause = gate.cause if shed else None
    if cause is not None:
        raise gate.refusal(cause)
    gate.inflight += 1
    scope[_ADMITTED] = True


class ObservabilityMiddleware:
    """Counts and times every request by route template, sets the security headers, sheds API
    requests at arrival while this process is saturated, and releases admitted requests.

    The gate is what keeps a spike polite when the API itself is the bottleneck (the backlog and
    memory limits only see the writers falling behind): while the queueing delay stands above
    its target (`Gate.cause`), a new `/api/` request is answered at once with 503 `overloaded`
    and `Retry-After` instead of joining an event-loop queue where every request, admitted or
    not, would wait seconds and end in a timeout. Pages are never refused here. Health,
    readiness, metrics and the password-hashing routes are exempt (`_UNGATED`).
    """

    def __init__(self, app: ASGIApp, gate: Gate, arrival_log: Path | None = None) -> None:
        self.app = app
        self.gate = gate
        self.arrivals = ArrivalLog(arrival_log) if arrival_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if self.arrivals is not None and scope["type"] == "lifespan":
                    self.arrivals.close()  # the lifespan returns at shutdown
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]
        if path.startswith("/api/") and gated(path):
            cause = self.gate.cause
            if cause is not None:
                await self._shed(cause, scope, receive, send)
                return

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers.extend(security_headers(scope))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if scope.pop(_ADMITTED, False):
                self.gate.inflight -= 1
            route = route_name(scope)
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
            if self.arrivals is not None:
                self.arrivals.append(method, route, status)

    async def _shed(self, cause: ShedCause, scope: Scope, receive: Receive, send: Send) -> None:
        """503 `overloaded` before routing, session or body: the cheapest answer there is."""
        request = Request(scope)
        response = problem(self.gate.refusal(cause), api_language(request))
        response.headers.update({k.decode(): v.decode() for k, v in security_headers(scope)})
        method = scope["method"]
        if method == "PUT" and scope["path"] == "/api/v1/me/registration":
            metrics.SUBMISSIONS_SHED.labels("busy").inc()
        metrics.HTTP_REQUESTS.labels("shed", method, "503").inc()
        await response(scope, receive, send)
        if self.arrivals is not None:
            self.arrivals.append(method, "shed", 503)


# Exempt from the gate: operations endpoints, and the routes that hash a password, which wait for
# a hash slot off the event loop and have their own limit (EXAMREG_LOGIN_QUEUE_LIMIT): a burst of
# logins at the window's opening must not count as load on the loop and shed everything else.
_UNGATED = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/auth/login",
        "/api/v1/auth/password",
        "/api/v1/staff/login",
        "/api/v1/staff/password",
        "/login",
        "/password",
        "/support/login",
        "/support/password",
    }
)

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
]
# Only on responses that went out over HTTPS (directly, or through a trusted proxy): RFC 6797 §7.2
# forbids it over plain HTTP. One year; no includeSubDomains, the deployment's other hosts are not
# ours to pin.
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers every response carries, with HSTS when the original scheme was https."""
    if scope.get("scheme") == "https":
        return [*_SECURITY_HEADERS, _HSTS]
    return _SECURITY_HEADERS
