"""Small value types shared by every layer; imports nothing of ours (a leaf, like errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SessionKind = Literal["candidate", "staff"]
"""Whose session: a roster candidate's or a staff member's (never interchangeable)."""


@dataclass(frozen=True, slots=True)
class ShardStats:
    """Backlog of one shard as the operators see it."""

    shard: int
    length: int  # entries in the stream (queued and not yet trimmed)
    lag: int  # entries never delivered to a writer
    pending: int  # delivered, not yet acknowledged
    oldest_pending_age: float  # seconds; 0 when none
    dead_letters: int
