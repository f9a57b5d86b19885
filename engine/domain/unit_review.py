"""Where a candidate stands in their registration unit's review (issue 13 item 5; domain.md §6.2).

Owns the derivation of a review state from two facts: the candidate's current version and the
unit's newest decision (which version it confirmed or returned). Nothing is stored as a state: a
confirmed version below the current one *is* "changed since confirmed", so a candidate's edit
needs no write on the review side. Pure.
"""

from __future__ import annotations

from typing import Final, Literal

ReviewState = Literal["not_registered", "unreviewed", "changed", "returned", "confirmed"]
# The queue's groups, in the order a unit works through them.
STATES: Final[tuple[ReviewState, ...]] = (
    "changed",
    "unreviewed",
    "returned",
    "not_registered",
    "confirmed",
)
ACTIONS: Final = ("confirm", "return")


def review_state(
    current_version: int | None, reviewed_version: int | None, action: str | None
) -> ReviewState:
    """The state from the current version and the newest decision (None: never reviewed).

    A version returned for correction that the candidate has since corrected (a newer version) is
    "changed", like a confirmed one edited again: either way the unit has a newer form to look at.
    """
    if current_version is None:
        return "not_registered"
    if reviewed_version is None or action is None:
        return "unreviewed"
    if reviewed_version < current_version:
        return "changed"
    return "confirmed" if action == "confirm" else "returned"
