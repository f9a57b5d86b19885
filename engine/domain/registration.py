"""The registration form's rules: a submitted body becomes the canonical form, or every error.

Owns field-level and cross-field validation of `PUT /api/v1/me/registration` (domain.md §4, §4.9)
and the citizen-ID consistency check the roster import reuses. It is pure: no IO, no `await`, no
Redis or SQL; reference sets arrive as a `Catalog`, the logged-in candidate and "today" as a
`CandidateContext`, so every rule is testable in microseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from engine.domain import reference
from engine.domain.registration_messages import (
    ADDRESS_CHARACTERS,
    CONTROL_CHARACTERS,
    KINDS,
    NAME_CHARACTERS,
    NAME_TOO_LONG_UPPER,
    PLACE_CHARACTERS,
    SCHOOL_COUNT,
    message,
)
from engine.errors import FieldError, InvalidRegistration

FIELDS: Final = (
    "full_name",
    "date_of_birth",
    "sex",
    "national_id",
    "ethnicity",
    "birthplace",
    "residence",
    "schools",
    "phone",
    "email",
    "candidate_type",
    "purposes",
    "electives",
    "foreign_language",
    "exemptions",
    "priority_group",
    "exam_site_province",
)
_RESIDENCE_FIELDS: Final = ("address", "province_code", "commune_code", "kv1_over_18_months")
_SCHOOL_FIELDS: Final = ("grade", "province_code", "school_code")
_EXEMPTION_FIELDS: Final = ("foreign_language_certificate",)
# The fields of the form's objects and lists of objects, for what walks the form generically (the
# keyed paper forms' columns, `engine.domain.paper_forms`): a new field in one of the tuples above
# is a new column there without any other change.
SUBFIELDS: Final = {
    "residence": _RESIDENCE_FIELDS,
    "schools": _SCHOOL_FIELDS,
    "exemptions": _EXEMPTION_FIELDS,
}

_SEXES: Final = ("male", "female")
_PURPOSES: Final = ("graduation", "admission")
_GRADES: Final = frozenset({10, 11, 12})
OBJECT_LISTS: Final = {"schools": len(_GRADES)}  # lists of objects, and their most rows
_MIN_AGE: Final = 14
_MAX_AGE: Final = 80
_CANDIDATE_TYPES: Final = tuple(code for code, _ in reference.CANDIDATE_TYPES)
_ELECTIVES: Final = tuple(code for code, _ in reference.ELECTIVES)
_LANGUAGES: Final = {code: (vi, en) for code, vi, en in reference.LANGUAGES}
_CERTIFICATE_LANGUAGE: Final = {code: language for code, language, _ in reference.CERTIFICATES}
_PRIORITY_GROUPS: Final = tuple(code for code, _ in reference.PRIORITY_GROUPS)

_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PHONE_SEPARATORS: Final = re.compile(r"[\s.\-]")
_MOBILE: Final = re.compile(r"0[35789][0-9]{8}")  # mobile prefixes 03, 05, 07, 08, 09
_EMAIL: Final = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")
_CITY_PREFIX: Final = re.compile(r"^(?:thanhpho|tp|tinh)")
# What no string field may hold (issue 12): PostgreSQL's text and jsonb refuse NUL (SQLSTATE 22P05),
# a lone surrogate is not UTF-8 at all, and no other C0/C1 control belongs in a form. Tab, line feed
# and carriage return are whitespace: `_text` collapses them to one space.
_UNSTORABLE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NAME_LIMITS: Final = (2, 80)  # registration_versions.full_name CHECK, on the stored value


class _Report:
    """The field errors found so far; validation continues past each one."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(
        self, path: str, code: str, text: tuple[str, str] | None = None, **params: object
    ) -> None:
        vi, en = text or message(code, **params)
        self.errors.append(FieldError(path, code, vi, en))

    def wrong_type(self, path: str, kind: str) -> None:
        kind_vi, kind_en = KINDS[kind]
        self.add(path, "wrong_type", kind_vi=kind_vi, kind_en=kind_en)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Reference sets the validator checks against."""

    province_codes: frozenset[str]
    school_keys: frozenset[tuple[str, str]]  # (province_code, school_code), domain.md §7.3

    @classmethod
    def from_reference(cls) -> Catalog:
        """The catalog of `engine.domain.reference`: every exam province code, the synthetic
        schools."""
        return cls.from_rows(
            (p.code for p in reference.PROVINCES),
            ((s.province_code, s.school_code) for s in reference.schools()),
        )

    @classmethod
    def from_rows(cls, provinces: Iterable[str], schools: Iterable[tuple[str, str]]) -> Catalog:
        """A catalog from plain rows, e.g. the reference tables read from the database."""
        return cls(frozenset(provinces), frozenset((p, s) for p, s in schools))


@dataclass(frozen=True, slots=True)
class CandidateContext:
    """What the validator knows about the submitter besides the body."""

    # The roster's 12-digit ID of the logged-in candidate; None leaves the comparison to the
    # caller (the API's submission compares it with the session's, in the enqueue's own call).
    national_id: str | None
    today: date  # injected reference date (plausibility of date of birth)


def _fold(text: str) -> str:
    """Key insensitive to case, accents, spaces and punctuation: 'Khơ-me', 'KHO ME' → 'khome'."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed.casefold() if unicodedata.category(c)[0] in "LN")


def _place_key(text: str) -> str:
    return _CITY_PREFIX.sub("", _fold(text))


def _place_index() -> dict[str, str]:
    # Pre-2025 names first: a birth registered before the 2025 merger names the old province, and
    # the first name filed under a key is its canonical spelling ("Hà Nội" → "TP Hà Nội").
    provinces = [p for p in reference.PROVINCES if p.cccd_code is not None]  # not 65 (army)
    names = [p.name for p in provinces] + [p.name_from_2025 for p in provinces]
    index: dict[str, str] = {}
    for alias, name in [*((n, n) for n in names), ("TP HCM", "TP Hồ Chí Minh")]:
        index.setdefault(_place_key(alias), name)
    return index


_ETHNICITY_BY_CODE: Final = dict(reference.ETHNICITIES)
_ETHNICITY_BY_KEY: Final = {_fold(name): name for _, name in reference.ETHNICITIES}
_PLACE_BY_KEY: Final = _place_index()


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_digits(text: str, count: int) -> bool:
    return len(text) == count and text.isascii() and text.isdigit()


def _reject_unknown(
    obj: Mapping[Any, Any], prefix: str, known: Collection[str], report: _Report
) -> None:
    for key in obj:
        if key not in known:
            report.add(_join(prefix, key), "unknown_field")


def _object(
    value: object, path: str, known: Collection[str], report: _Report
) -> dict[str, Any] | None:
    if value is None:
        report.add(path, "required")
        return None
    if not isinstance(value, dict):
        report.wrong_type(path, "object")
        return None
    _reject_unknown(value, path, known, report)
    return value


def _list(value: object, path: str, report: _Report) -> list[Any] | None:
    if value is None:
        report.add(path, "required")
        return None
    if not isinstance(value, list):
        report.wrong_type(path, "list")
        return None
    return value


def _text(value: object, path: str, report: _Report) -> str | None:
    """A required string, NFC with whitespace runs collapsed to one space and trimmed.

    Every string field goes through here, so no field can carry what PostgreSQL would refuse.
    """
    if not isinstance(value, str) and value is not None:
        report.wrong_type(path, "string")
        return None
    if value is not None and _UNSTORABLE.search(value):
        report.add(path, "invalid_characters", CONTROL_CHARACTERS)
        return None
    if _is_blank(value):
        report.add(path, "required")
        return None
    return " ".join(unicodedata.normalize("NFC", str(value)).split())


def _within(text: str, path: str, low: int, high: int, report: _Report) -> bool:
    if len(text) < low:
        report.add(path, "too_short", limit=low)
    elif len(text) > high:
        report.add(path, "too_long", limit=high)
    return low <= len(text) <= high


def _choice(value: object, path: str, choices: Collection[str], report: _Report) -> str | None:
    text = _text(value, path, report)
    if text is not None and text not in choices:
        report.add(path, "invalid_choice", choices=", ".join(choices))
        return None
    return text


def _province(value: object, path: str, catalog: Catalog, report: _Report) -> str | None:
    code = _text(value, path, report)
    if code is not None and code not in catalog.province_codes:
        report.add(path, "unknown_province")
        return None
    return code


def _full_name(value: object, report: _Report) -> str | None:
    name = _text(value, "full_name", report)
    if name is None:
        return None
    # The rules apply to what is stored: upper-casing can lengthen a name (ß → SS, ﬃ → FFI) and
    # leave a string that is no longer NFC (Greek ΐ → Ϊ́), hence NFC again before measuring.
    stored = unicodedata.normalize("NFC", name.upper())
    low, high = _NAME_LIMITS
    if len(name) <= high < len(stored):
        vi, en = NAME_TOO_LONG_UPPER
        report.add("full_name", "too_long", (vi.format(limit=high), en.format(limit=high)))
        return None
    if not _within(stored, "full_name", low, high, report):
        return None
    allowed = all(unicodedata.category(c)[0] in "LM" or c in " '-" for c in stored)
    if not allowed or not any(c.isalpha() for c in stored):
        report.add("full_name", "invalid_characters", NAME_CHARACTERS)
        return None
    return stored


def _date_of_birth(value: object, today: date, report: _Report) -> date | None:
    text = _text(value, "date_of_birth", report)
    if text is None:
        return None
    try:
        born = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:
        born = None
    if born is None:
        report.add("date_of_birth", "invalid_date")
        return None
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if not _MIN_AGE <= age <= _MAX_AGE:
        report.add("date_of_birth", "implausible_date", low=_MIN_AGE, high=_MAX_AGE)
        return None
    return born


def check_national_id(
    national_id: str, date_of_birth: date, sex: str
) -> list[tuple[str, str, str]]:
    """Check a citizen ID against its holder's date of birth and sex (domain.md §7.5, §4.9 V1–V3).

    The ID is `PPP G YY RRRRRR`. `G` is even for a man and odd for a woman, and `G // 2` counts
    centuries from 1900 (V1; one public validator has the parity reversed). `YY` is the birth year
    mod 100 (V2). `PPP` is never checked: it can be a country code for births abroad (V3).

    Args:
        national_id: the ID as written; anything but 12 ASCII digits is `invalid_format`.
        date_of_birth: the holder's date of birth.
        sex: `"male"` or `"female"`.

    Returns:
        `(code, Vietnamese message, English message)` for each problem; empty when consistent.

    Raises:
        ValueError: `sex` is neither `"male"` nor `"female"`.
    """
    if sex not in _SEXES:
        raise ValueError(f"sex must be 'male' or 'female', not {sex!r}")
    if not _is_digits(national_id, 12):
        return [("invalid_format", *message("invalid_format", digits=12))]
    codes: list[str] = []
    marker = int(national_id[3])
    if marker % 2 != (1 if sex == "female" else 0):
        codes.append("sex_mismatch")
    if marker // 2 != (date_of_birth.year - 1900) // 100:
        codes.append("century_mismatch")
    if national_id[4:6] != f"{date_of_birth.year % 100:02d}":
        codes.append("birth_year_mismatch")
    return [(code, *message(code)) for code in codes]


def _national_id(
    value: object, ctx: CandidateContext, born: date | None, sex: str | None, report: _Report
) -> str | None:
    number = _text(value, "national_id", report)
    if number is None:
        return None
    if not _is_digits(number, 12):
        report.add("national_id", "invalid_format", digits=12)
        return None
    if ctx.national_id is not None and number != ctx.national_id:
        report.add("national_id", "mismatch_roster")
    # Cross-field rules only make sense once the date of birth and the sex are themselves valid.
    if born is not None and sex is not None:
        for code, vi, en in check_national_id(number, born, sex):
            report.add("national_id", code, (vi, en))
    return number


def _ethnicity(value: object, report: _Report) -> str | None:
    text = _text(value, "ethnicity", report)
    if text is None:
        return None
    name = _ETHNICITY_BY_CODE.get(text) or _ETHNICITY_BY_KEY.get(_fold(text))
    if name is None:
        report.add("ethnicity", "unknown_ethnicity")
    return name


def _birthplace(value: object, report: _Report) -> str | None:
    place = _text(value, "birthplace", report)
    if place is None or not _within(place, "birthplace", 2, 100, report):
        return None
    province = _PLACE_BY_KEY.get(_place_key(place))
    if province is not None:
        return province
    # Born abroad: the country's name in Vietnamese (domain.md §4.2, 3a), kept as written.
    if not all(unicodedata.category(c)[0] in "LM" or c in " -" for c in place):
        report.add("birthplace", "invalid_characters", PLACE_CHARACTERS)
        return None
    return place if _within(place, "birthplace", 2, 60, report) else None


def _residence(value: object, catalog: Catalog, report: _Report) -> dict[str, Any] | None:
    obj = _object(value, "residence", _RESIDENCE_FIELDS, report)
    if obj is None:
        return None
    return {
        "address": _address(obj.get("address"), report),
        "province_code": _province(
            obj.get("province_code"), "residence.province_code", catalog, report
        ),
        "commune_code": _commune(obj.get("commune_code"), report),
        "kv1_over_18_months": _flag(
            obj.get("kv1_over_18_months"), "residence.kv1_over_18_months", report
        ),
    }


def _address(value: object, report: _Report) -> str | None:
    address = _text(value, "residence.address", report)
    if address is None or not _within(address, "residence.address", 5, 200, report):
        return None
    if any(unicodedata.category(c)[0] == "C" for c in address):
        report.add("residence.address", "invalid_characters", ADDRESS_CHARACTERS)
        return None
    return address


def _commune(value: object, report: _Report) -> str | None:
    """Filled only for especially-difficult communes (domain.md §4.3, 5b); blank otherwise."""
    if _is_blank(value):
        return None
    code = _text(value, "residence.commune_code", report)
    if code is not None and not _is_digits(code, 2):
        report.add("residence.commune_code", "invalid_format", digits=2)
        return None
    return code


def _flag(value: object, path: str, report: _Report) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        report.wrong_type(path, "boolean")
        return False
    return value


def _grade(value: object, path: str, report: _Report) -> int | None:
    if value is None:
        report.add(path, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):  # JSON true is not a grade
        report.wrong_type(path, "integer")
        return None
    if value not in _GRADES:
        report.add(path, "out_of_range", low=min(_GRADES), high=max(_GRADES))
        return None
    return value


def _school(value: object, path: str, catalog: Catalog, report: _Report) -> dict[str, Any]:
    obj = _object(value, path, _SCHOOL_FIELDS, report)
    if obj is None:
        return {"grade": None, "province_code": None, "school_code": None}
    grade = _grade(obj.get("grade"), f"{path}.grade", report)
    province = _province(obj.get("province_code"), f"{path}.province_code", catalog, report)
    school = _text(obj.get("school_code"), f"{path}.school_code", report)
    if school is not None and not _is_digits(school, 3):
        report.add(f"{path}.school_code", "invalid_format", digits=3)
    elif (
        school is not None
        and province is not None
        and (province, school) not in catalog.school_keys
    ):
        report.add(f"{path}.school_code", "unknown_school")
    return {"grade": grade, "province_code": province, "school_code": school}


def _schools(
    value: object, candidate_type: str | None, catalog: Catalog, report: _Report
) -> list[dict[str, Any]] | None:
    # Free candidates (b, c, d) may have no school history; grade-12 students need all 3 rows (V8).
    if value is None and candidate_type != "a":
        return []
    entries = _list(value, "schools", report)
    if entries is None:
        return None
    if len(entries) > len(_GRADES):
        report.add("schools", "wrong_count", SCHOOL_COUNT)
    rows = [_school(item, f"schools.{i}", catalog, report) for i, item in enumerate(entries)]
    seen: set[int] = set()
    for index, row in enumerate(rows):
        if row["grade"] in seen:
            report.add(f"schools.{index}.grade", "duplicate_grade")
        elif row["grade"] is not None:
            seen.add(row["grade"])
    # A row whose grade is itself wrong already has an error; do not also call the set incomplete.
    graded = all(row["grade"] is not None for row in rows)
    if candidate_type == "a" and (len(rows) < len(_GRADES) or (graded and seen != _GRADES)):
        report.add("schools", "grades_incomplete")
    return sorted(rows, key=lambda row: row["grade"] or 0)


def _phone(value: object, report: _Report) -> str | None:
    raw = _text(value, "phone", report)
    if raw is None:
        return None
    number = _PHONE_SEPARATORS.sub("", raw)
    for prefix in ("+84", "84"):
        rest = number.removeprefix(prefix)
        if rest != number and len(rest) in (9, 10):
            number = "0" + rest.removeprefix("0")  # "+84 0912…" is a common way to write it
            break
    if not _MOBILE.fullmatch(number):
        report.add("phone", "invalid_phone")
        return None
    return number


def _email(value: object, report: _Report) -> str | None:
    if _is_blank(value):
        return None
    address = _text(value, "email", report)
    if address is not None and (len(address) > 254 or not _EMAIL.fullmatch(address)):
        report.add("email", "invalid_email")
        return None
    return address


def _distinct_choices(
    items: list[Any], path: str, choices: Collection[str], report: _Report
) -> list[str]:
    chosen: list[str] = []
    for index, item in enumerate(items):
        item_path = f"{path}.{index}"
        if not isinstance(item, str):
            report.wrong_type(item_path, "string")
        elif item not in choices:
            report.add(item_path, "invalid_choice", choices=", ".join(choices))
        elif item in chosen:
            report.add(item_path, "duplicate")
        else:
            chosen.append(item)
    return chosen


def _purposes(value: object, report: _Report) -> list[str] | None:
    items = _list(value, "purposes", report)
    if items is None:
        return None
    if not items:
        report.add("purposes", "empty")
    chosen = _distinct_choices(items, "purposes", _PURPOSES, report)
    return [purpose for purpose in _PURPOSES if purpose in chosen]


def _electives(value: object, report: _Report) -> list[str] | None:
    items = _list(value, "electives", report)
    if items is None:
        return None
    if len(items) != 2:
        report.add("electives", "wrong_count")
    chosen = _distinct_choices(items, "electives", _ELECTIVES, report)
    if set(chosen) >= reference.EXCLUSIVE_ELECTIVES:
        report.add("electives", "exclusive_subjects")
    return chosen


def _takes_language(value: object, electives: list[str] | None) -> bool | None:
    """Whether `NN` is an elective; None until a full, valid pair says it is not."""
    if electives is not None and "NN" in electives:
        return True
    complete = isinstance(value, list) and len(value) == len(electives or ()) == 2
    return False if complete else None


def _foreign_language(value: object, takes_language: bool | None, report: _Report) -> str | None:
    """The language code, required if and only if `NN` is an elective (V5); None if not known."""
    if _is_blank(value):
        if takes_language:
            report.add("foreign_language", "required")
        return None
    code = _choice(value, "foreign_language", _LANGUAGES, report)
    if code is not None and takes_language is False:
        report.add("foreign_language", "not_allowed")
        return None
    return code


def _exemptions(
    value: object, takes_language: bool | None, language: str | None, report: _Report
) -> dict[str, str] | None:
    if value is None:
        return None
    obj = _object(value, "exemptions", _EXEMPTION_FIELDS, report)
    if obj is None:
        return None
    path = "exemptions.foreign_language_certificate"
    certificate = _text(obj.get("foreign_language_certificate"), path, report)
    if certificate is None:
        return None
    if certificate not in _CERTIFICATE_LANGUAGE:
        report.add(path, "unknown_certificate")
    elif takes_language is False:
        report.add("exemptions", "not_allowed")
    elif language is not None and _CERTIFICATE_LANGUAGE[certificate] != language:
        language_vi, language_en = _LANGUAGES[language]
        report.add(
            path,
            "certificate_language_mismatch",
            language_vi=language_vi[0].lower() + language_vi[1:],
            language_en=language_en,
        )
    return {"foreign_language_certificate": certificate}


def _priority_group(value: object, report: _Report) -> str | None:
    return None if _is_blank(value) else _choice(value, "priority_group", _PRIORITY_GROUPS, report)


def _field_rank(error: FieldError) -> int:
    top = error.field.split(".", 1)[0]
    return FIELDS.index(top) if top in FIELDS else len(FIELDS)


def validate_registration(body: object, ctx: CandidateContext, catalog: Catalog) -> dict[str, Any]:
    """Validate a submitted registration form and return its canonical form.

    Args:
        body: the decoded JSON body of `PUT /api/v1/me/registration`.
        ctx: the logged-in candidate's roster ID and today's date.
        catalog: the province and school codes that exist.

    Returns:
        The normalized form: every field present, in form order, JSON-serializable.

    Raises:
        InvalidRegistration: with every field error at once, ordered by field.
    """
    if not isinstance(body, dict):
        raise InvalidRegistration(
            errors=(FieldError("", "not_an_object", *message("not_an_object")),)
        )
    report = _Report()
    _reject_unknown(body, "", FIELDS, report)
    born = _date_of_birth(body.get("date_of_birth"), ctx.today, report)
    sex = _choice(body.get("sex"), "sex", _SEXES, report)
    candidate_type = _choice(body.get("candidate_type"), "candidate_type", _CANDIDATE_TYPES, report)
    electives = _electives(body.get("electives"), report)
    takes_language = _takes_language(body.get("electives"), electives)
    language = _foreign_language(body.get("foreign_language"), takes_language, report)
    form: dict[str, Any] = {
        "full_name": _full_name(body.get("full_name"), report),
        "date_of_birth": born.isoformat() if born else None,
        "sex": sex,
        "national_id": _national_id(body.get("national_id"), ctx, born, sex, report),
        "ethnicity": _ethnicity(body.get("ethnicity"), report),
        "birthplace": _birthplace(body.get("birthplace"), report),
        "residence": _residence(body.get("residence"), catalog, report),
        "schools": _schools(body.get("schools"), candidate_type, catalog, report),
        "phone": _phone(body.get("phone"), report),
        "email": _email(body.get("email"), report),
        "candidate_type": candidate_type,
        "purposes": _purposes(body.get("purposes"), report),
        "electives": electives,
        "foreign_language": language,
        "exemptions": _exemptions(body.get("exemptions"), takes_language, language, report),
        "priority_group": _priority_group(body.get("priority_group"), report),
        "exam_site_province": _province(
            body.get("exam_site_province"), "exam_site_province", catalog, report
        ),
    }
    if report.errors:
        raise InvalidRegistration(errors=tuple(sorted(report.errors, key=_field_rank)))
    return form
