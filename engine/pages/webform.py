"""The registration form as HTML inputs: flat field names ↔ the JSON body of the API.

Owns the mapping between the web form's `application/x-www-form-urlencoded` fields (`full_name`,
`residence.address`, `schools.0.school_code`, repeated `purposes` and `electives` checkboxes) and
the JSON form `engine.domain.registration.validate_registration` checks, and the way back from a
validator error path (`schools.2.school_code`, `electives.1`) to the input that shows it. Pure: no
IO, so the round trip is unit-tested against the validator itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import FieldError

# Flat values: input name → every value sent for it (checkbox groups send several).
Values = dict[str, list[str]]

SCHOOL_ROWS: Final = 3  # grades 10, 11, 12: row i is grade 10 + i (domain.md §4.4)
FIRST_GRADE: Final = 10
_TEXT: Final = (
    "full_name",
    "date_of_birth",
    "sex",
    "national_id",
    "ethnicity",
    "birthplace",
    "phone",
    "email",
    "candidate_type",
    "foreign_language",
    "priority_group",
    "exam_site_province",
)
_RESIDENCE_TEXT: Final = ("address", "province_code", "commune_code")
_LISTS: Final = ("purposes", "electives")
_CERTIFICATE: Final = "exemptions.foreign_language_certificate"
_KV1: Final = "residence.kv1_over_18_months"
# Fields of the page that are not part of the registration form.
CONTROL_FIELDS: Final = frozenset({"csrf_token", "idempotency_key", "action", "lang"})


def collect(pairs: Iterable[tuple[str, str]]) -> Values:
    """Group decoded `(name, value)` pairs by name, in order."""
    values: Values = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def first(values: Mapping[str, list[str]], name: str) -> str:
    found = values.get(name)
    return found[0] if found else ""


def _text(values: Values, name: str) -> str | None:
    value = first(values, name).strip()
    return value or None


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON body built from the inputs, and which school row each list index came from."""

    body: dict[str, Any]
    school_rows: tuple[int, ...]


def to_body(values: Values) -> Body:
    """The JSON body of `PUT /api/v1/me/registration` for the submitted inputs.

    Blank inputs become null, so the validator reports them exactly as it does for the API.
    A grade-12 student (type `a`) always sends all three school rows, so a blank row is reported
    on its own inputs; other candidates send only the rows they filled in.
    """
    body: dict[str, Any] = {name: _text(values, name) for name in _TEXT}
    body["residence"] = {
        **{f: _text(values, f"residence.{f}") for f in _RESIDENCE_TEXT},
        "kv1_over_18_months": bool(first(values, _KV1)),
    }
    rows: list[dict[str, Any]] = []
    used: list[int] = []
    for row in range(SCHOOL_ROWS):
        province = _text(values, f"schools.{row}.province_code")
        school = _text(values, f"schools.{row}.school_code")
        if body["candidate_type"] == "a" or province or school:
            rows.append(
                {"grade": FIRST_GRADE + row, "province_code": province, "school_code": school}
            )
            used.append(row)
    body["schools"] = rows if rows or body["candidate_type"] == "a" else None
    for name in _LISTS:
        body[name] = [v for v in values.get(name, []) if v]
    certificate = _text(values, _CERTIFICATE)
    body["exemptions"] = {"foreign_language_certificate": certificate} if certificate else None
    return Body(body, tuple(used))


def from_form(form: Mapping[str, Any]) -> Values:
    """The inputs' values for a (canonical) registration form, to prefill the page."""
    values: Values = {}
    for name in _TEXT:
        if form.get(name) is not None:
            values[name] = [str(form[name])]
    residence = form.get("residence") or {}
    for name in _RESIDENCE_TEXT:
        if residence.get(name) is not None:
            values[f"residence.{name}"] = [str(residence[name])]
    if residence.get("kv1_over_18_months"):
        values[_KV1] = ["1"]
    for school in form.get("schools") or []:
        row = int(school.get("grade") or 0) - FIRST_GRADE
        if 0 <= row < SCHOOL_ROWS:
            for name in ("province_code", "school_code"):
                if school.get(name) is not None:
                    values[f"schools.{row}.{name}"] = [str(school[name])]
    for name in _LISTS:
        values[name] = [str(v) for v in form.get(name) or []]
    certificate = (form.get("exemptions") or {}).get("foreign_language_certificate")
    if certificate:
        values[_CERTIFICATE] = [str(certificate)]
    return values


def input_for(path: str, school_rows: tuple[int, ...] = tuple(range(SCHOOL_ROWS))) -> str:
    """The input (or checkbox group) that shows the validator's error at `path`."""
    parts = path.split(".")
    if parts[0] in _LISTS:
        return parts[0]
    if parts[0] == "exemptions":
        return _CERTIFICATE
    if parts[0] == "schools" and len(parts) > 1 and parts[1].isdigit():
        index = int(parts[1])
        row = school_rows[index] if index < len(school_rows) else index
        return ".".join(["schools", str(row), *parts[2:]])
    return path


def errors_by_input(
    errors: Iterable[FieldError], lang: str, school_rows: tuple[int, ...]
) -> dict[str, list[str]]:
    """Every error message in `lang`, grouped by the input it belongs to (in validator order)."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        message = error.message_en if lang == "en" else error.message
        messages = grouped.setdefault(input_for(error.field, school_rows), [])
        if message not in messages:
            messages.append(message)
    return grouped
