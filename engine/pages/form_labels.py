"""Version differences as a page shows them: a label for each field path, values in words.

Owns turning `engine.domain.form_diff.Change`s into rows of (label, before, after) in the page's
language. A label is the form's own catalogue key when there is one (`full_name`,
`residence.address`: the labels of the registration page), else built from the path's parts
(`schools.2.school_code` → "Nơi học THPT · dòng 3 · Mã trường"), else the path itself, so a field
the form gains later is shown without a change here. Pure: no IO.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from engine.domain.form_diff import Change
from engine.pages.i18n import CATALOG, Lang

_PREFIX: Final = "diff_field."


def _text(key: str, lang: Lang, **params: object) -> str:
    vi, en = CATALOG[key]
    return (en if lang == "en" else vi).format(**params)


def _part(name: str, lang: Lang) -> str:
    # The diff's own word first: a form key may be a sentence with placeholders ("Lớp {grade}").
    for key in (_PREFIX + name, name):
        if key in CATALOG and "{" not in CATALOG[key][0]:
            return _text(key, lang)
    return name


def field_label(path: str, lang: Lang) -> str:
    """The label of a dotted field path, in `lang`."""
    if path in CATALOG and "{" not in CATALOG[path][0]:
        return _text(path, lang)
    parts = path.split(".")
    words = [
        _text("diff_row", lang, n=int(part) + 1) if part.isdigit() else _part(part, lang)
        for part in parts
    ]
    return " · ".join(words)


def value_text(path: str, value: Any, lang: Lang) -> str:
    """A value in words: booleans as yes/no, lists joined, coded choices by their catalogue name
    when it has one (`sex_male`, `candidate_type_a`), the empty marker for nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return _text("diff_empty", lang)
    if isinstance(value, bool):
        return _text("desk_yes" if value else "desk_no", lang)
    if isinstance(value, list):
        return ", ".join(value_text(path, item, lang) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {value_text(path, v, lang)}" for k, v in value.items())
    key = f"{path.rsplit('.', 1)[-1]}_{value}"
    return _text(key, lang) if key in CATALOG and "{" not in CATALOG[key][0] else str(value)


def rows(changes: Iterable[Change], lang: Lang) -> list[dict[str, str]]:
    """The changes as table rows for the templates: field path, label, before, after."""
    return [
        {
            "field": c.field,
            "label": field_label(c.field, lang),
            "before": value_text(c.field, c.before, lang),
            "after": value_text(c.field, c.after, lang),
        }
        for c in changes
    ]


def json_rows(changes: Iterable[Mapping[str, Any]], lang: Lang) -> list[dict[str, str]]:
    """Like `rows`, for changes already serialised (`Change.to_json`) by a service."""
    return rows((Change(c["field"], c["before"], c["after"]) for c in changes), lang)
