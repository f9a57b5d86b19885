"""What changed between two versions of a registration form, field by field.

Owns `diff_forms`, the comparison the candidate's status page, the support console and the unit's
review queue show (issue 13 item 4). It knows no field by name: it walks whatever keys the two
forms have (nested objects by key, lists of objects by position, anything else as one value), so a
field the form gains later shows up in the diff without a change here. Labels are the pages'
(`engine.pages.form_labels`); this module is pure: no IO, no catalogue.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Change:
    """One leaf that differs: `field` is its dotted path (`schools.2.school_code`), as in the
    validator's errors; `before` is None for a field the older version did not have."""

    field: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _is_object_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The newer form's order first, then what only the older one had."""
    return [*new, *(key for key in old if key not in new)]


def _walk(path: str, before: Any, after: Any) -> Iterator[Change]:
    if before == after:
        return
    # An absent object (None) against a present one compares as an empty one, so a newly filled
    # `exemptions` lists its leaves rather than one opaque object.
    objects = isinstance(before, dict) or isinstance(after, dict)
    if objects and before is not None and not isinstance(before, dict):
        objects = False
    if objects and after is not None and not isinstance(after, dict):
        objects = False
    if objects:
        old, new = before or {}, after or {}
        for key in _keys(old, new):
            yield from _walk(_join(path, key), old.get(key), new.get(key))
        return
    if _is_object_list(before) or _is_object_list(after):
        old_rows: Sequence[Any] = before if isinstance(before, list) else []
        new_rows: Sequence[Any] = after if isinstance(after, list) else []
        for index in range(max(len(old_rows), len(new_rows))):
            yield from _walk(
                _join(path, index),
                old_rows[index] if index < len(old_rows) else None,
                new_rows[index] if index < len(new_rows) else None,
            )
        return
    yield Change(path, before, after)


def diff_forms(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[Change, ...]:
    """Every leaf that differs from `before` to `after`, in the newer form's field order.

    Args:
        before: the older version's canonical form, or None for a first version (no changes).
        after: the newer version's canonical form.

    Returns:
        The changes; empty when the forms are equal or there is no older version. Lists of plain
        values (electives, purposes) compare as one value; lists of objects (schools) by position.
    """
    if before is None:
        return ()
    return tuple(_walk("", dict(before), dict(after)))


def version_diffs(
    forms: Sequence[tuple[int, Mapping[str, Any]]],
) -> dict[int, tuple[Change, ...]]:
    """For versions `(version, form)` in any order, each one's changes from the version before
    it among those given; the oldest given has none."""
    ordered = sorted(forms, key=lambda pair: pair[0])
    diffs: dict[int, tuple[Change, ...]] = {}
    previous: Mapping[str, Any] | None = None
    for version, form in ordered:
        diffs[version] = diff_forms(previous, form)
        previous = form
    return diffs
