"""The API workers' HTTP/1.1 connections: uvicorn's httptools protocol with the limits it lacks.

Owns what happens on a connection before the app sees a request, and after it answered one
whose body never finished: a deadline for the request line and headers (a connection that sends
nothing, or stalls mid-header, is closed: 408 if a request had begun), limits on the number and
the size of the headers (431), and a bounded wait for the rest of a body the app did not read
(uvicorn would otherwise keep such a connection open as long as a byte trickles in now and then).
uvicorn has `timeout_keep_alive` and, for h11 only, `h11_max_incomplete_event_size`; nothing
here for httptools (issue 12). It must not know any route; the body's own read timeout is the
app's (`engine.http.plumbing.read_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from engine.errors import ExamregError, HeadersTooLarge, RequestTimeout
from engine.settings import Settings

# After answering a request whose body has not fully arrived, how long the connection may go on
# delivering it (to be discarded) before it is closed: the client then reads the answer instead
# of a reset, and a trickle cannot hold the connection open.
LINGER_SECONDS = 5.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a header deadline, header limits and a bounded linger.

    The limits are class attributes: uvicorn builds one protocol per connection from the class
    given as `http=`, so `limited_protocol` makes a subclass carrying the configured values.
    """

    header_timeout: ClassVar[float] = 10.0
    max_header_count: ClassVar[int] = 100
    max_header_bytes: ClassVar[int] = 16_384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # bytes received now are a request line or headers
        self._header_bytes = 0
        self._header_count = 0
        self._parsed_bytes = 0  # of the request line and headers, as parsed
        self._begun = False  # a byte of the current request has been parsed
        self._refusal: ExamregError | None = None

    # -- the header deadline --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()  # uvicorn waits for a first byte forever

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._deadline, self._linger):
            if timer is not None:
                timer.cancel()
        self._deadline = self._linger = None
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._begun:
            self._refuse(RequestTimeout())
        else:
            self.transport.close()  # nothing was asked: nothing to answer

    # -- header limits ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: bytes past the end of the headers in `data` are body, not headers.
        if (
            self._awaiting_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(HeadersTooLarge())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._header_count = 0
        self._parsed_bytes = 0
        self._arm_deadline()  # a keep-alive connection's next request: its own deadline

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Exact, however the bytes were split into reads; `data_received` bounds what httptools
        # buffers before it calls back (a single header of a megabyte).
        self._header_count += 1
        self._count(len(name) + len(value) + 4, self._header_count > self.max_header_count)
        super().on_header(name, value)

    def _count(self, size: int, too_many: bool = False) -> None:
        self._parsed_bytes += size
        if too_many or self._parsed_bytes > self.max_header_bytes:
            self._refusal = HeadersTooLarge()
            raise _Refused  # httptools re-raises it as HttpParserCallbackError, see below

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error with a plain 400; a refusal of ours is answered as such.
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True  # whatever follows is the next request
        self._begun = False
        super().on_message_complete()
        if self._linger is not None and not self.transport.is_closing():
            self.transport.close()  # the unread body is over; no keep-alive after it

    # -- answers and the linger -------------------------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # Answered before the body arrived (a login redirect, 401, 408, 413): let the client
            # finish sending for a moment, discarded, then close; uvicorn's keep-alive timer
            # would be cancelled by every byte of it.
            self._linger = self.loop.call_later(LINGER_SECONDS, self._close)

    def _close(self) -> None:
        self._linger = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, error: ExamregError) -> None:
        """Answer `error` as problem JSON and close: the refused request never reached the app."""
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request, behind one still being answered: read nothing more, and
            # close once that answer is out.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        # No request was parsed, so no language was asked for: Vietnamese, with English beside.
        body = orjson.dumps({**error.to_problem("vi"), "detail_en": error.detail_en})
        head = [STATUS_LINE[error.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def limited_protocol(settings: Settings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with `settings`' limits."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "max_header_count": settings.max_header_count,
            "max_header_bytes": settings.max_header_bytes,
        },
    )
