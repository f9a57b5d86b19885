"""What one client address counts as for the login throttle's per-address cap."""

from __future__ import annotations

import pytest

from engine.adapters.sessions import address_bucket


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("198.51.100.23", "198.51.100.23"),
        ("::ffff:198.51.100.23", "198.51.100.23"),  # IPv4 seen through a dual-stack socket
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # same subscriber network
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_counts_as_its_64_network(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket
