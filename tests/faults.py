"""A TCP proxy for network-fault tests: latency, cuts and stalls between a client and a server.

Neither Debian nor PyPI has a maintained fault proxy that runs without a separate daemon
(Toxiproxy's Python client needs the Go server, which neither ships), so this is a small asyncio
one. It runs in the test's event loop and listens on a loopback port; point a URL at `address`.

- `latency`: seconds added before each chunk is forwarded, both ways.
- `cut()`: reset every open connection and refuse new ones at once (a dead link, a restart).
- `stall()`: keep connections open but forward nothing (a partition: the client's timeouts
  must fire); `restore()` then resets the stalled connections, as TCP would give up on them.
- `drop_once(marker, deliver=...)`: the next time a client sends bytes containing `marker`, cut
  that connection, before the request reaches the server or after it (the answer is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class _Drop:
    marker: bytes
    deliver: bool


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target`, with faults switched on and off by the test."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.latency = 0.0
        self.mode = "open"  # open | cut | stall
        self.connections = 0  # accepted so far
        self.dropped = 0  # connections cut by drop_once
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # every socket, aborted at close()
        self._drop: _Drop | None = None
        self._answered: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], asyncio.Event] = {}

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, template: str) -> str:
        """`template` with `{port}` replaced, e.g. `redis://127.0.0.1:{port}/0`."""
        return template.format(port=self.port)

    def cut(self) -> None:
        self.mode = "cut"
        self._reset_all()

    def stall(self) -> None:
        self.mode = "stall"

    def restore(self) -> None:
        if self.mode == "stall":
            self._reset_all()
        self.mode = "open"

    def drop_once(self, marker: bytes, *, deliver: bool) -> None:
        self._drop = _Drop(marker, deliver)

    async def close(self) -> None:
        self._reset_all()
        for writer in self._writers:
            _abort(writer)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @contextlib.contextmanager
    def cut_for_now(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    # -- the plumbing ----------------------------------------------------------------------------

    def _reset_all(self) -> None:
        for client, upstream in list(self._links):
            _abort(client)
            _abort(upstream)
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        if self.mode == "cut":
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, TimeoutError):
            _abort(writer)
            return
        self._writers.add(up_writer)
        link = (writer, up_writer)
        self._links.add(link)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, link, outbound=True)),
            asyncio.create_task(self._pump(up_reader, writer, link, outbound=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        outbound: bool,
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if not outbound and link in self._answered:
                    self._answered[link].set()  # a dropped link's answer: swallowed
                    return
                while self.mode == "stall" and link in self._links:
                    await asyncio.sleep(0.01)
                if link not in self._links:
                    return
                if self.latency:
                    await asyncio.sleep(self.latency)
                drop = self._drop if outbound else None
                if drop is not None and drop.marker in chunk:
                    self._drop = None
                    await self._drop_link(link, chunk, drop.deliver)
                    return
                sink.write(chunk)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if link in self._links:
                self._links.discard(link)
                for side in link:
                    _abort(side)

    async def _drop_link(
        self, link: tuple[asyncio.StreamWriter, asyncio.StreamWriter], chunk: bytes, deliver: bool
    ) -> None:
        self.dropped += 1
        client, upstream = link
        self._links.discard(link)
        _abort(client)  # the client never sees an answer
        if deliver:
            # The server gets the request and answers; the answer goes nowhere.
            answered = self._answered[link] = asyncio.Event()
            upstream.write(chunk)
            with contextlib.suppress(OSError, TimeoutError):
                await upstream.drain()
                await asyncio.wait_for(answered.wait(), 10)
            del self._answered[link]
        _abort(upstream)


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
