"""The password policy: what a new password must be. Pure: no hashing here."""

from __future__ import annotations

from engine.errors import WeakPassword


def check_password_policy(new: str, current: str | None = None) -> None:
    """At least 8 characters with a letter and a digit, at most 128, and not the current one."""
    if (
        len(new) < 8
        or len(new) > 128
        or not any(c.isalpha() for c in new)
        or not any(c.isdigit() for c in new)
        or new == current
    ):
        raise WeakPassword()
