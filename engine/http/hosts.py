"""The trusted-host check: a request whose Host header this deployment does not serve is refused.

Owns matching the Host header (port stripped, case folded) against `EXAMREG_TRUSTED_HOSTS` and
the 400 `untrusted_host` answer, before any route runs: Starlette builds absolute URLs, such as
the trailing-slash redirect's `Location`, from the Host header, so an unchecked one lets anybody
aim a redirect at a site of their choosing (issue 12). Modelled on Starlette's
TrustedHostMiddleware, which answers in plain text; ours answers `application/problem+json`.
It must not know any route but the probes' (`UNCHECKED`).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.errors import UntrustedHost
from engine.http.responses import api_language, problem

# Kubernetes probes and Prometheus address a pod by its IP, and these answers hold no URL.
UNCHECKED = frozenset({"/healthz", "/readyz", "/metrics"})


def host_name(header: str) -> str:
    """The host of a Host header: `[::1]:8000` → `::1`, `Thi.Example.VN.:443` → `thi.example.vn`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0].rstrip(".")


class TrustedHosts:
    """Refuses a request (400 `untrusted_host`) unless its Host is one of `hosts`.

    `hosts` holds names and addresses (`exam.example.vn`, `127.0.0.1`, `::1`), `*.domain` for
    every subdomain of `domain` (not `domain` itself), or `*` for any host at all.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        names = {h.strip().lower() for h in hosts}
        if not names:
            raise ValueError("at least one trusted host (or *) is needed")
        self.app = app
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.vn"

    def trusts(self, header: str) -> bool:
        host = host_name(header)
        return self.any or host in self.exact or (bool(host) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any or scope["path"] in UNCHECKED:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.trusts(request.headers.get("host", "")):
            await self.app(scope, receive, send)
            return
        await problem(UntrustedHost(), api_language(request))(scope, receive, send)
