"""The hostile review's attack (issue 12, item 2) over real sockets against a real `examreg serve`.

Hundreds of sockets that start a request and stall — a form page's upload without a login, a
logged-in API upload, headers that never end, a connection that says nothing — must neither
take the API offline (the in-flight gate counts only requests with a session and a complete
body) nor stay open (header and body read timeouts); headers past the count or size limit get
431. Meanwhile ordinary logged-in requests are served within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.web_stack import processes
from tests.support import TEST_PASSWORD, form_for

pytestmark = pytest.mark.slow

TIMEOUT = 3  # EXAMREG_HEADER_TIMEOUT_SECONDS and EXAMREG_BODY_TIMEOUT_SECONDS for this server
SERVED_WITHIN = 5.0  # seconds for an ordinary request while the attack runs (a loaded 2-core box)
CLOSED_WITHIN = 30.0  # seconds for the server to hang up on every stalled socket


def _head(method: str, path: str, **headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _open(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def _answer(sock: socket.socket, within: float) -> tuple[bytes, bool]:
    """What the server sent before it hung up, and whether it hung up within `within` s."""
    received = b""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _status(answer: bytes) -> int | None:
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else None


@contextlib.contextmanager
def _attack(port: int, token: str) -> Iterator[dict[str, list[socket.socket]]]:
    """Stalled sockets of every kind, held open by the client side until the block ends."""
    anonymous_form = _head(
        "POST",
        "/registration",
        **{"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "30000"},
    )
    logged_in_api = _head(
        "PUT",
        "/api/v1/me/registration",
        **{
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": "30000",
            "Idempotency-Key": "stalled",
        },
    )
    groups: dict[str, list[socket.socket]] = {}
    try:
        groups["anonymous form upload"] = [
            _open(port, anonymous_form + b"full_name=") for _ in range(150)
        ]
        groups["logged-in API upload"] = [
            _open(port, logged_in_api + b'{"full_name": "') for _ in range(60)
        ]
        groups["headers never end"] = [
            _open(port, b"GET /api/v1/window HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            for _ in range(60)
        ]
        groups["silent connection"] = [_open(port, b"") for _ in range(30)]
        yield groups
    finally:
        for socks in groups.values():
            for sock in socks:
                sock.close()


def _served(client: httpx.Client, auth: dict[str, str], candidate: dict[str, Any]) -> float:
    """Ordinary requests, each answered with a 2xx within SERVED_WITHIN seconds; the slowest."""
    slowest = 0.0
    for i in range(3):
        for method, path, kwargs in [
            ("GET", "/api/v1/window", {}),
            ("GET", "/api/v1/me", {"headers": auth}),
            (
                "PUT",
                "/api/v1/me/registration",
                {
                    "json": form_for(candidate, seed=i + 1),
                    "headers": {**auth, "Idempotency-Key": f"ordinary-{i}"},
                },
            ),
            ("GET", "/status", {}),
        ]:
            started = time.monotonic()
            response = client.request(method, path, **kwargs)
            took = time.monotonic() - started
            assert 200 <= response.status_code < 300, (method, path, response.text[:300])
            assert took < SERVED_WITHIN, f"{method} {path} took {took:.1f}s"
            slowest = max(slowest, took)
    return slowest


def _skip_forced_change(database_url: str, candidate_id: int) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE candidates SET must_change_password = false WHERE candidate_id = $1",
                candidate_id,
            )
        finally:
            await conn.close()

    asyncio.run(run())


def test_stalled_sockets_neither_take_the_api_offline_nor_stay_open(
    database_url: str, redis_url: str, roster: list[dict[str, Any]], tmp_path: Path
) -> None:
    candidate = roster[20]
    _skip_forced_change(database_url, candidate["candidate_id"])  # /status opens at once
    limits = {
        "EXAMREG_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "EXAMREG_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    with processes(database_url, redis_url, tmp_path, {"api": limits}) as stack:
        base = stack["api"]
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post(
                "/api/v1/auth/login",
                json={"login": candidate["national_id"], "password": TEST_PASSWORD},
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            with _attack(port, token) as groups:
                time.sleep(1)  # the server has accepted and parsed every stalled socket
                slowest = _served(client, auth, candidate)  # /status: the login's cookie
                print(f"slowest of 12 ordinary requests during the attack: {slowest:.3f}s")
                # The server hangs up on every stalled socket, after answering what it can.
                deadline = time.monotonic() + CLOSED_WITHIN
                statuses: dict[str, set[int | None]] = {}
                for name, socks in groups.items():
                    for sock in socks:
                        answer, closed = _answer(sock, max(0.1, deadline - time.monotonic()))
                        assert closed, f"{name}: still open after {CLOSED_WITHIN}s"
                        statuses.setdefault(name, set()).add(_status(answer))
        assert statuses == {
            "anonymous form upload": {303},  # to the login page, the body never read
            "logged-in API upload": {408},
            "headers never end": {408},
            "silent connection": {None},
        }, statuses
        _header_limits(port)


def _header_limits(port: int) -> None:
    """Past 100 headers or 16 KiB of them: 431 and the connection closed."""
    many = b"".join(f"X-H{i}: v\r\n".encode() for i in range(150))  # ~1.5 KiB, 150 headers
    sock = _open(port, b"GET /api/v1/window HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
    answer, closed = _answer(sock, 10)
    sock.close()
    assert _status(answer) == 431 and closed, answer[:200]
    assert b'"code":"headers_too_large"' in answer
    for name, headers in [
        # 30 KiB in 30 headers, in one send: the server may well read them in one piece.
        ("30 large headers", b"".join(f"X-H{i}: {'v' * 1024}\r\n".encode() for i in range(30))),
        ("5000 headers", b"".join(f"X-H{i}: v\r\n".encode() for i in range(5000))),
        ("a 1 MB header", b"X-Big: " + b"a" * 2**20 + b"\r\n"),
    ]:
        sock = _open(port, b"")
        with contextlib.suppress(OSError):  # the server may hang up before all of it is sent
            sock.sendall(b"GET /api/v1/window HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        answer, closed = _answer(sock, 10)
        sock.close()
        assert closed and _status(answer) in (431, None), (name, answer[:200])
        if name == "30 large headers":  # all of it was sent: the answer is there to read
            assert _status(answer) == 431, answer[:200]
