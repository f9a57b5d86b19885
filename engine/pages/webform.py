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
    "class_12",
    "contact_address",
    "curriculum",
    "study_track",
    "graduation_priority",
    "graduation_encouragement",
    "photo_sha256",
)
_INTEGERS: Final = ("diploma_year",)
_FLAGS: Final = ("foreign_national",)
_RESIDENCE_TEXT: Final = ("address", "province_code", "commune_code", "district_code")
_RESIDENCE_FLAGS: Final = ("kv1_over_18_months", "difficult_commune_over_18_months")
_LISTS: Final = ("purposes", "electives")
_CERTIFICATE: Final = "exemptions.foreign_language_certificate"
_EXEMPTION_TEXT: Final = (
    "foreign_language_certificate",
    "foreign_language_basis",
    "certificate_score",
    "certificate_expires_on",
    "all_papers_reason",
)
_EXEMPTION_INTEGERS: Final = ("literature_certificate_level",)
_UNIT_TEXT: Final = ("province_code", "unit_code")
RESERVED_ROWS: Final = 4  # Toán, Ngữ văn and two electives at most
_RESERVED_TEXT: Final = ("subject", "score")
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


def _number(values: Values, name: str) -> int | str | None:
    """Digits become a number; anything else goes as typed, for the validator to report."""
    value = _text(values, name)
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON body built from the inputs, and which school row each list index came from."""

    body: dict[str, Any]
    school_rows: tuple[int, ...]
    reserved_rows: tuple[int, ...] = ()


def to_body(values: Values) -> Body:
    """The JSON body of `PUT /api/v1/me/registration` for the submitted inputs.

    Blank inputs become null, so the validator reports them exactly as it does for the API.
    A grade-12 student (type `a`) always sends all three school rows, so a blank row is reported
    on its own inputs; other candidates send only the rows they filled in.
    """
    body: dict[str, Any] = {name: _text(values, name) for name in _TEXT}
    body.update({name: _number(values, name) for name in _INTEGERS})
    body.update({name: bool(first(values, name)) for name in _FLAGS})
    body["residence"] = {
        **{f: _text(values, f"residence.{f}") for f in _RESIDENCE_TEXT},
        **{f: bool(first(values, f"residence.{f}")) for f in _RESIDENCE_FLAGS},
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
    exemptions: dict[str, Any] = {
        **{f: _text(values, f"exemptions.{f}") for f in _EXEMPTION_TEXT},
        **{f: _number(values, f"exemptions.{f}") for f in _EXEMPTION_INTEGERS},
    }
    body["exemptions"] = exemptions if any(v is not None for v in exemptions.values()) else None
    unit = {f: _text(values, f"registration_unit.{f}") for f in _UNIT_TEXT}
    body["registration_unit"] = unit if any(unit.values()) else None
    scores: list[dict[str, Any]] = []
    reserved: list[int] = []
    for row in range(RESERVED_ROWS):
        item: dict[str, Any] = {
            f: _text(values, f"reserved_scores.{row}.{f}") for f in _RESERVED_TEXT
        }
        item["exam_year"] = _number(values, f"reserved_scores.{row}.exam_year")
        if any(v is not None for v in item.values()):
            scores.append(item)
            reserved.append(row)
    body["reserved_scores"] = scores
    return Body(body, tuple(used), tuple(reserved))


def _put(values: Values, prefix: str, obj: Mapping[str, Any], names: Iterable[str]) -> None:
    """Copy `obj`'s set members `names` into inputs called `prefix + name`; True is "1"."""
    for name in names:
        value = obj.get(name)
        if value is True:
            values[prefix + name] = ["1"]
        elif value is not None and value is not False:
            values[prefix + name] = [f"{value:g}" if isinstance(value, float) else str(value)]


def from_form(form: Mapping[str, Any]) -> Values:
    """The inputs' values for a (canonical) registration form, to prefill the page."""
    values: Values = {}
    _put(values, "", form, (*_TEXT, *_INTEGERS, *_FLAGS))
    _put(values, "residence.", form.get("residence") or {}, (*_RESIDENCE_TEXT, *_RESIDENCE_FLAGS))
    _put(values, "registration_unit.", form.get("registration_unit") or {}, _UNIT_TEXT)
    _put(
        values,
        "exemptions.",
        form.get("exemptions") or {},
        (*_EXEMPTION_TEXT, *_EXEMPTION_INTEGERS),
    )
    for row, score in enumerate((form.get("reserved_scores") or [])[:RESERVED_ROWS]):
        _put(values, f"reserved_scores.{row}.", score, ("subject", "score", "exam_year"))
    for school in form.get("schools") or []:
        row = int(school.get("grade") or 0) - FIRST_GRADE
        if 0 <= row < SCHOOL_ROWS:
            _put(values, f"schools.{row}.", school, ("province_code", "school_code"))
    for name in _LISTS:
        values[name] = [str(v) for v in form.get(name) or []]
    return values


def input_for(
    path: str,
    school_rows: tuple[int, ...] = tuple(range(SCHOOL_ROWS)),
    reserved_rows: tuple[int, ...] = tuple(range(RESERVED_ROWS)),
) -> str:
    """The input (or checkbox group) that shows the validator's error at `path`."""
    parts = path.split(".")
    if parts[0] in _LISTS:
        return parts[0]
    if parts[0] == "exemptions":
        return path if len(parts) == 2 else _CERTIFICATE
    for name, rows in (("schools", school_rows), ("reserved_scores", reserved_rows)):
        if parts[0] == name and len(parts) > 1 and parts[1].isdigit():
            index = int(parts[1])
            row = rows[index] if index < len(rows) else index
            return ".".join([name, str(row), *parts[2:]])
    return path


def errors_by_input(
    errors: Iterable[FieldError],
    lang: str,
    school_rows: tuple[int, ...],
    reserved_rows: tuple[int, ...] = tuple(range(RESERVED_ROWS)),
) -> dict[str, list[str]]:
    """Every error message in `lang`, grouped by the input it belongs to (in validator order)."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        message = error.message_en if lang == "en" else error.message
        messages = grouped.setdefault(input_for(error.field, school_rows, reserved_rows), [])
        if message not in messages:
            messages.append(message)
    return grouped
