"""Open-loop HTTP arrival-rate driver (asyncio + uvloop): the benchmark's load generator.

wrk has no rate control and Debian ships neither wrk2 nor oha, so this small client holds a
constant arrival rate regardless of answers: request i is *intended* at t0 + i/rate; it is sent
then on an idle keep-alive connection, or on a new one (up to --connections), or, when all are
busy, as soon as one frees. Latency is measured from the intended time, so a stalled server
cannot hide behind slower senders (coordinated omission). `dispatch_lag` says how late the driver
itself was (its own bottleneck), `send_lag` adds the wait for a free connection.

`--request me` sends `GET --path` with each candidate's bearer token instead (no body), and
`--request login` a `POST --path` of `{"login": <national_id>, "password": --password}` (a roster
seeded with one shared load-test password), for the login-storm phase of `make bench`.

`--closed-loop --count N` instead keeps `--connections` requests in flight until N are answered
(full throughput, like wrk); its latencies are then `service_*` (answer − actual send).
`--retry-shed` re-sends a 503/429 answer's request (same key and body) after 0.5 s, up to 5 times,
as the app does, so a run can end with every request acknowledged.

    python -m loadtest.driver --port 8000 --rate 2000 --duration 10 --data accept.tsv \\
        --path /api/v1/me/registration --out step.json [--ledger acked.tsv]

`--data` lines: `candidate_id TAB token TAB national_id TAB full_name TAB date_of_birth TAB sex
TAB candidate_type TAB province_code TAB school_code`, plus a first line `#templates TAB <json>`
mapping each candidate type to a %-format body template. Every request carries a fresh
Idempotency-Key `<--key-prefix><i>`; `--ledger` appends `candidate_id TAB key TAB receipt_id` for
every 202 (the benchmark checks persisted rows against it). It never imports `engine`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
from array import array
from collections import deque
from pathlib import Path
from typing import Any

from loadtest.profiles import percentile


class Workload:
    """Request bytes for request number i, for candidate i mod N (see `--request`)."""

    def __init__(
        self,
        data: Path,
        path: str,
        host: str,
        key_prefix: str,
        kind: str = "registration",
        password: str = "",
    ) -> None:
        with data.open("rb") as handle:
            first = handle.readline()
            if not first.startswith(b"#templates\t"):
                raise SystemExit(f"{data}: first line must be '#templates<TAB><json>'")
            self.templates: dict[str, str] = json.loads(first.split(b"\t", 1)[1])
            self.rows = handle.read().splitlines()
        if not self.rows:
            raise SystemExit(f"{data}: no candidates")
        method = {"registration": "PUT", "me": "GET", "login": "POST"}[kind]
        self.head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
        self.key_prefix = key_prefix
        self.kind = kind
        self.password = password

    def candidate(self, i: int) -> bytes:
        return self.rows[i % len(self.rows)].split(b"\t", 1)[0]

    def key(self, i: int) -> str:
        return f"{self.key_prefix}{i}"

    def request(self, i: int) -> bytes:
        _, token, nid, name, dob, sex, kind, province, school = (
            self.rows[i % len(self.rows)].decode().split("\t")
        )
        if self.kind == "me":  # a logged-in candidate opens their profile
            return f"{self.head}Authorization: Bearer {token}\r\n\r\n".encode()
        if self.kind == "login":  # the candidate logs in with the roster's shared password
            body = json.dumps({"login": nid, "password": self.password}).encode()
            return (
                f"{self.head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        body = (
            self.templates[kind]
            % {
                "nid": nid,
                "name": name,
                "dob": dob,
                "sex": sex,
                "province": province,
                "school": school,
            }
        ).encode()
        return (
            f"{self.head}Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Idempotency-Key: {self.key(i)}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; parses just enough of each answer."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current: tuple[int, float, float] | None = None  # (i, intended, sent)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, i: int, intended: float, payload: bytes) -> None:
        assert self.transport is not None
        self.current = (i, intended, time.perf_counter())
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.current is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            marker = head.find(b"content-length:")
            length = int(head[marker + 15 : head.find(b"\r\n", marker)]) if marker >= 0 else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(head[9:12])
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            current, self.current = self.current, None
            self.driver.completed(self, current, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.driver.lost(self)


class Driver:
    """Schedules, sends and records; see the module docstring."""

    def __init__(self, args: argparse.Namespace, workload: Workload) -> None:
        self.args = args
        self.workload = workload
        self.loop = asyncio.get_running_loop()
        self.idle: list[Connection] = []
        self.connections = 0
        self.opening = 0
        self.backlog: deque[tuple[int, float]] = deque()
        self.outstanding = 0
        self.latency = array("d")  # seconds from intended send to answer, measured requests
        self.admitted = array("d")  # the same, 2xx answers only
        self.send_lag = array("d")
        self.dispatch_lag = array("d")
        self.service = array("d")  # answer − actual send
        self.attempts: dict[int, int] = {}
        self.retried = 0
        self.statuses: dict[int, int] = {}
        self.codes: dict[str, int] = {}
        self.errors = 0
        self.abandoned = 0
        self.ledger: list[str] = []
        self.measure_from = 0.0
        self.last_answer = 0.0
        self.peak_connections = 0
        self.drained = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0_epoch = 0.0

    async def open(self) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: Connection(self), self.args.host, self.args.port
            )
        except OSError:
            self.errors += 1
            self.opening -= 1
            return
        self.opening -= 1
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        self.next_for(conn)

    def dispatch(self, i: int, intended: float) -> None:
        self.outstanding += 1
        if self.idle:
            self.start(self.idle.pop(), i, intended)
            return
        self.backlog.append((i, intended))
        if self.connections + self.opening < self.args.connections:
            self.opening += 1  # counted now: many opens may be under way before one runs
            task = self.loop.create_task(self.open())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def start(self, conn: Connection, i: int, intended: float) -> None:
        now = time.perf_counter()
        if intended >= self.measure_from:
            self.send_lag.append(now - intended)
        conn.send(i, intended, self.workload.request(i))

    def next_for(self, conn: Connection) -> None:
        give_up = self.args.give_up
        while self.backlog:
            i, intended = self.backlog.popleft()
            if give_up and time.perf_counter() - intended > give_up:
                self.abandoned += 1  # a user who waited this long for the page gives up
                self.finish_one()
                continue
            self.start(conn, i, intended)
            return
        self.idle.append(conn)

    def completed(
        self, conn: Connection, current: tuple[int, float, float], status: int, body: bytes
    ) -> None:
        i, intended, sent = current
        now = time.perf_counter()
        self.last_answer = now
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400:  # problem+json: count by machine code (overloaded, unavailable, …)
            self.count_code(status, body)
        if status in (429, 503) and self.args.retry_shed and self.attempts.get(i, 0) < 5:
            self.attempts[i] = self.attempts.get(i, 0) + 1
            self.retried += 1
            self.loop.call_later(0.5, self.redispatch, i, intended)
            self.next_for(conn)
            return
        self.service.append(now - sent)
        if intended >= self.measure_from:
            self.latency.append(now - intended)
            if 200 <= status < 300:
                self.admitted.append(now - intended)
        if status == 202 and self.args.ledger:
            at = body.find(b'"receipt_id":"')
            receipt = body[at + 14 : at + 34].decode() if at >= 0 else "?"
            self.ledger.append(
                f"{self.workload.candidate(i).decode()}\t{self.workload.key(i)}\t{receipt}\n"
            )
        self.finish_one()
        self.next_for(conn)

    def count_code(self, status: int, body: bytes) -> None:
        at = body.find(b'"code":"')
        end = body.find(b'"', at + 8)
        code = f"{status} {body[at + 8 : end].decode()}" if at >= 0 and end > 0 else str(status)
        self.codes[code] = self.codes.get(code, 0) + 1

    def redispatch(self, i: int, intended: float) -> None:
        """A shed request again, same key and body; still counted from its first intended time."""
        self.outstanding -= 1  # dispatch counts it again
        self.dispatch(i, intended)

    def lost(self, conn: Connection) -> None:
        self.connections -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.current is not None:
            self.errors += 1
            conn.current = None
            self.finish_one()

    def finish_one(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.drained.set()

    async def run(self) -> dict[str, Any]:
        args = self.args
        for _ in range(min(args.connections, args.preconnect)):
            self.opening += 1
            await self.open()
        total = args.count or int(args.rate * args.duration)
        t0 = time.perf_counter() + 0.05
        self.t0_epoch = time.time() + 0.05
        self.measure_from = t0 + args.warmup
        i = 0
        while i < total:
            now = time.perf_counter()
            due = min(total, int((now - t0) * args.rate) + 1)
            if args.closed_loop:
                due = min(total, i + 10_000)  # all at once, in slices so answers flow meanwhile
            while i < due:
                if not args.closed_loop and now >= t0 + i / args.rate + 0.002:
                    self.dispatch_lag.append(now - t0 - i / args.rate)
                self.dispatch(i, now if args.closed_loop else t0 + i / args.rate)
                i += 1
            if args.closed_loop:
                await asyncio.sleep(0)
                continue
            delay = t0 + i / args.rate - time.perf_counter()
            # At least 1 ms: no busy wait; a late send still counts from its intended time.
            await asyncio.sleep(max(0.001, delay))
        sent_until = time.perf_counter()
        if self.outstanding:
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), args.grace)
        return self.summary(total, t0, sent_until)

    def summary(self, total: int, t0: float, sent_until: float) -> dict[str, Any]:
        latency = sorted(self.latency)
        admitted = sorted(self.admitted)
        lag = sorted(self.send_lag)
        service = sorted(self.service)
        dispatch_lag = sorted(self.dispatch_lag)
        elapsed = max(1e-9, self.last_answer - t0)
        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 300)
        window = max(1e-9, self.args.duration - self.args.warmup)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        shed = sum(n for s, n in self.statuses.items() if s in (429, 503))
        answered = sum(self.statuses.values())

        def ms(values: list[float], q: float) -> float:
            return round(percentile(values, q) * 1000, 2)

        return {
            "target_rate": self.args.rate,
            "t0_epoch": round(self.t0_epoch, 3),
            "duration": self.args.duration,
            "warmup": self.args.warmup,
            "scheduled": total,
            "answered": answered,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "codes": dict(sorted(self.codes.items())),
            "ok": ok,
            "shed": shed,
            "errors": self.errors,
            "abandoned": self.abandoned,
            "unfinished": max(0, self.outstanding),
            "measured": len(latency),
            "achieved_rate": round(len(latency) / window, 1),
            "p50_ms": ms(latency, 0.50),
            "p90_ms": ms(latency, 0.90),
            "p99_ms": ms(latency, 0.99),
            "p999_ms": ms(latency, 0.999),
            "max_ms": round((latency[-1] if latency else 0) * 1000, 2),
            "admitted_measured": len(admitted),  # 2xx answers after the warm-up
            "admitted_p99_ms": ms(admitted, 0.99),
            "send_lag_p99_ms": ms(lag, 0.99),
            "dispatch_late": len(dispatch_lag),
            "dispatch_lag_max_ms": round((dispatch_lag[-1] if dispatch_lag else 0) * 1000, 2),
            "service_p50_ms": ms(service, 0.50),
            "service_p99_ms": ms(service, 0.99),
            "retried": self.retried,
            "ok_per_s": round(ok / elapsed, 1),
            "send_lag_max_ms": round((lag[-1] if lag else 0) * 1000, 2),
            "schedule_seconds": round(sent_until - t0, 3),
            "last_answer_after_schedule_s": round(max(0.0, self.last_answer - sent_until), 3),
            "peak_connections": self.peak_connections,
            "driver_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        }


async def drive(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    workload = Workload(
        Path(args.data),
        args.path,
        f"{args.host}:{args.port}",
        args.key_prefix,
        args.request,
        args.password,
    )
    driver = Driver(args, workload)
    return await driver.run(), driver.ledger


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/v1/me/registration")
    parser.add_argument("--data", required=True, help="candidates and body templates (see above)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of arrivals")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--connections", type=int, default=512, help="at most this many")
    parser.add_argument("--preconnect", type=int, default=32)
    parser.add_argument("--grace", type=float, default=15.0, help="wait for answers after")
    parser.add_argument("--give-up", type=float, default=0.0, help="drop if unsent this long")
    parser.add_argument("--key-prefix", default=f"d{int(time.time())}-")
    parser.add_argument("--ledger", default="")
    parser.add_argument("--count", type=int, default=0, help="requests (default rate × duration)")
    parser.add_argument("--closed-loop", action="store_true", help="see above")
    parser.add_argument("--retry-shed", action="store_true", help="see above")
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--request",
        choices=("registration", "me", "login"),
        default="registration",
        help="PUT the form (default), GET --path with the token, or POST a login",
    )
    parser.add_argument(
        "--password", default="", help="--request login: the roster's shared load-test password"
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup >= args.duration:
        parser.error("need rate > 0 and 0 <= warmup < duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        import uvloop

        result, ledger = uvloop.run(drive(args))
    except ImportError:
        result, ledger = asyncio.run(drive(args))
    if args.ledger:
        with open(args.ledger, "a", encoding="utf-8") as handle:
            handle.writelines(ledger)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
