"""Unit tests of `engine.http.hosts`: which Host headers a trusted-host list admits."""

from __future__ import annotations

import pytest

from engine.http.hosts import TrustedHosts, host_name


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("thi.example.vn", "thi.example.vn"),
        ("Thi.Example.VN:8443", "thi.example.vn"),
        ("thi.example.vn.", "thi.example.vn"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("", ""),
    ],
)
def test_host_name_drops_the_port_and_folds_case(header: str, host: str) -> None:
    assert host_name(header) == host


def test_names_wildcards_and_addresses() -> None:
    hosts = TrustedHosts(_app, ["thi.example.vn", "*.cdn.example.vn", "127.0.0.1", "::1"])
    for header in ("thi.example.vn", "THI.example.vn:443", "a.cdn.example.vn", "127.0.0.1:80"):
        assert hosts.trusts(header), header
    assert hosts.trusts("[::1]:8000")
    for header in ("evil.example", "cdn.example.vn", "thi.example.vn.evil.example", "", "[::2]"):
        assert not hosts.trusts(header), header
    # A wildcard matches on a label boundary only.
    assert not hosts.trusts("evilcdn.example.vn")


def test_a_star_trusts_every_host_and_an_empty_list_is_refused() -> None:
    assert TrustedHosts(_app, ["*"]).trusts("anything.example")
    with pytest.raises(ValueError, match="trusted host"):
        TrustedHosts(_app, [])
