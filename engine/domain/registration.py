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
    FREE_CHOICE_COUNT,
    KINDS,
    NAME_CHARACTERS,
    NAME_TOO_LONG_UPPER,
    PHOTO_REQUIRED,
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
    # The rest of the Phiếu (domain.md §4, 2025 rules); optional in the API, so clients written
    # for the shorter form keep working; absent means the default the canonical form shows.
    "class_12",
    "contact_address",
    "curriculum",
    "study_track",
    "foreign_national",
    "diploma_year",
    "reserved_scores",
    "graduation_priority",
    "graduation_encouragement",
    "registration_unit",
    "photo_sha256",
)
_RESIDENCE_FIELDS: Final = (
    "address",
    "province_code",
    "commune_code",
    "kv1_over_18_months",
    "district_code",
    "difficult_commune_over_18_months",
)
_SCHOOL_FIELDS: Final = ("grade", "province_code", "school_code")
_EXEMPTION_FIELDS: Final = (
    "foreign_language_certificate",
    "foreign_language_basis",
    "certificate_score",
    "certificate_expires_on",
    "literature_certificate_level",
    "all_papers_reason",
)
_RESERVED_SCORE_FIELDS: Final = ("subject", "score", "exam_year")
_UNIT_FIELDS: Final = ("province_code", "unit_code")
_CURRICULA: Final = tuple(code for code, _, _ in reference.CURRICULA)
_STUDY_TRACKS: Final = tuple(code for code, _, _ in reference.STUDY_TRACKS)
_OLD_PAPERS: Final = tuple(code for code, _ in reference.OLD_CURRICULUM_PAPERS)
_COMBINED_PAPERS: Final = frozenset({"KHTN", "KHXH"})
_EXEMPTION_BASES: Final = tuple(code for code, _, _ in reference.EXEMPTION_BASES)
_ALL_PAPERS_REASONS: Final = tuple(code for code, _, _ in reference.ALL_PAPERS_REASONS)
_GRADUATION_PRIORITIES: Final = tuple(code for code, _, _ in reference.GRADUATION_PRIORITIES)
_ENCOURAGEMENTS: Final = tuple(code for code, _, _ in reference.GRADUATION_ENCOURAGEMENTS)
_SUBJECTS: Final = (
    *(code for code, _ in (*reference.COMPULSORY_SUBJECTS, *reference.ELECTIVES)),
    "KHTN",
    "KHXH",
)
_LITERATURE_LEVELS: Final = (3, 6)  # the 6-level framework for Vietnamese as a foreign language
_RESERVING_TYPES: Final = ("b", "c")  # domain.md §4.8 item 14
_DIPLOMA_TYPES: Final = ("c", "d")  # domain.md §4.6 item 10b
_FREE_CHOICE_TYPES: Final = ("c", "d")  # §4.7 12b (iii): only the subjects they want
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_CLASS_NAME: Final = re.compile(r"[0-9A-Za-zÀ-ỹĐđ][0-9A-Za-zÀ-ỹĐđ .\-/]{0,19}")
_SCORE: Final = re.compile(r"(?:10(?:\.0{1,2})?|[0-9](?:\.[0-9]{1,2})?)")
# The fields of the form's objects and lists of objects, for what walks the form generically (the
# keyed paper forms' columns, `engine.domain.paper_forms`): a new field in one of the tuples above
# is a new column there without any other change.
SUBFIELDS: Final = {
    "residence": _RESIDENCE_FIELDS,
    "schools": _SCHOOL_FIELDS,
    "exemptions": _EXEMPTION_FIELDS,
    "reserved_scores": _RESERVED_SCORE_FIELDS,
    "registration_unit": _UNIT_FIELDS,
}

_SEXES: Final = ("male", "female")
_PURPOSES: Final = ("graduation", "admission")
_GRADES: Final = frozenset({10, 11, 12})
# Lists of objects, and their most rows (a reserved score per exam paper: at most 4 of them).
OBJECT_LISTS: Final = {"schools": len(_GRADES), "reserved_scores": 4}
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
class FormRules:
    """The rules domain.md marks as inferred [I] or as changing by year, as settings decide.

    The defaults are the 2025 rules as domain.md reads them; `engine.settings` builds the
    deployment's from `EXAMREG_FORM_*` and `EXAMREG_PHOTO_REQUIRED`.
    """

    old_curriculum: bool = True  # 2025 only: the 2006-curriculum papers for free candidates [C]
    reserved_score_min: float = 5.0  # §4.8 item 14: the pre-2025 threshold [P]
    vocational_encouragement: bool = False  # abolished from 2025 [C] S71
    unit_is_grade_12_school: bool = (
        True  # type a registers at its own school [C] S1; [I] as a check
    )
    photo_required: bool = False  # H3 [C]; off by default so API clients without a photo work
    certificates_valid_until: date | None = None  # the exam-procedures day (§4.8 13a); None: today


DEFAULT_RULES: Final = FormRules()


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
    commune = _two_digits(obj.get("commune_code"), "residence.commune_code", report)
    difficult = _flag(
        obj.get("difficult_commune_over_18_months"),
        "residence.difficult_commune_over_18_months",
        report,
    )
    # The commune code is written only for especially-difficult communes (§4.3 5b), so the claim
    # of 18 months in one (5c) needs it.
    if difficult and commune is None and _is_blank(obj.get("commune_code")):
        report.add("residence.commune_code", "commune_required")
    return {
        "address": _address(obj.get("address"), "residence.address", report),
        "province_code": _province(
            obj.get("province_code"), "residence.province_code", catalog, report
        ),
        "commune_code": commune,
        "kv1_over_18_months": _flag(
            obj.get("kv1_over_18_months"), "residence.kv1_over_18_months", report
        ),
        # Nullable: Vietnam has had no district level since 1/7/2025 (§4.3).
        "district_code": _two_digits(obj.get("district_code"), "residence.district_code", report),
        "difficult_commune_over_18_months": difficult,
    }


def _address(value: object, path: str, report: _Report) -> str | None:
    address = _text(value, path, report)
    if address is None or not _within(address, path, 5, 200, report):
        return None
    if any(unicodedata.category(c)[0] == "C" for c in address):
        report.add(path, "invalid_characters", ADDRESS_CHARACTERS)
        return None
    return address


def _two_digits(value: object, path: str, report: _Report) -> str | None:
    """A 2-digit MOET code, or None when blank (commune: only especially-difficult ones, §4.3)."""
    if _is_blank(value):
        return None
    code = _text(value, path, report)
    if code is not None and not _is_digits(code, 2):
        report.add(path, "invalid_format", digits=2)
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


def _electives(
    value: object,
    candidate_type: str | None,
    curriculum: str | None,
    track: str | None,
    report: _Report,
) -> list[str] | None:
    items = _list(value, "electives", report)
    if items is None:
        return None
    if curriculum == "GDPT2006":
        # The old format (§4.7 12d): one combined paper, and Ngoại ngữ (optional in GDTX, §5).
        chosen = _distinct_choices(items, "electives", _OLD_PAPERS, report)
        combined = [code for code in chosen if code in _COMBINED_PAPERS]
        needs_language = track != "GDTX"
        if len(combined) != 1 or (needs_language and "NN" not in chosen):
            report.add(
                "electives",
                "old_curriculum_papers",
                language_vi=" và môn Ngoại ngữ" if needs_language else "",
                language_en=" and Ngoại ngữ" if needs_language else "",
            )
        return chosen
    if candidate_type in _FREE_CHOICE_TYPES:
        if not 1 <= len(items) <= 2:
            report.add("electives", "wrong_count", FREE_CHOICE_COUNT)
    elif len(items) != 2:
        report.add("electives", "wrong_count")
    chosen = _distinct_choices(items, "electives", _ELECTIVES, report)
    if set(chosen) >= reference.EXCLUSIVE_ELECTIVES:
        report.add("electives", "exclusive_subjects")
    return chosen


def _takes_language(value: object, electives: list[str] | None, fewest: int = 2) -> bool | None:
    """Whether `NN` is an elective; None until a full, valid choice says it is not (`fewest`:
    the smallest full choice, 1 for graduates who choose only what they need)."""
    if electives is not None and "NN" in electives:
        return True
    chosen = len(electives or ())
    complete = isinstance(value, list) and len(value) == chosen and fewest <= chosen <= 2
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


@dataclass(frozen=True, slots=True)
class _Exam:
    """What the exemption rules need to know about the rest of the form."""

    takes_language: bool | None
    language: str | None
    electives: list[str] | None
    foreign_national: bool
    today: date


def _exemptions(
    value: object, exam: _Exam, rules: FormRules, report: _Report
) -> dict[str, Any] | None:
    """Foreign-language (13a), Literature (13b) and all-paper (13c) exemptions; None: none."""
    if value is None:
        return None
    obj = _object(value, "exemptions", _EXEMPTION_FIELDS, report)
    if obj is None:
        return None
    path_certificate = "exemptions.foreign_language_certificate"
    certificate, basis = _language_exemption(obj, exam, report)
    score = None
    if not _is_blank(obj.get("certificate_score")):
        score = _text(obj.get("certificate_score"), "exemptions.certificate_score", report)
        if score is not None and not _within(score, "exemptions.certificate_score", 1, 20, report):
            score = None
    expires = _expiry(obj.get("certificate_expires_on"), exam.today, rules, report)
    level = _literature_level(obj.get("literature_certificate_level"), exam, report)
    reason = None
    if not _is_blank(obj.get("all_papers_reason")):
        reason = _choice(
            obj.get("all_papers_reason"),
            "exemptions.all_papers_reason",
            _ALL_PAPERS_REASONS,
            report,
        )
    if basis is None and level is None and reason is None:
        if all(_is_blank(item) for item in obj.values()):  # an object that claims nothing
            report.add(path_certificate, "required")
        return None
    return {
        "foreign_language_certificate": certificate,
        "foreign_language_basis": basis,
        "certificate_score": score,
        "certificate_expires_on": expires,
        "literature_certificate_level": level,
        "all_papers_reason": reason,
    }


def _language_exemption(
    obj: Mapping[str, Any], exam: _Exam, report: _Report
) -> tuple[str | None, str | None]:
    """The foreign-language exemption's certificate and basis (§4.8 13a). V6 holds by itself:
    the exemption needs `NN` among the electives, and electives are distinct."""
    path = "exemptions.foreign_language_certificate"
    certificate = None
    if not _is_blank(obj.get("foreign_language_certificate")):
        certificate = _text(obj.get("foreign_language_certificate"), path, report)
    basis = None
    if not _is_blank(obj.get("foreign_language_basis")):
        basis = _choice(
            obj.get("foreign_language_basis"),
            "exemptions.foreign_language_basis",
            _EXEMPTION_BASES,
            report,
        )
    elif certificate is not None:
        basis = "CERTIFICATE"
    if basis == "CERTIFICATE" and certificate is None and _is_blank(obj.get(path[11:])):
        report.add(path, "basis_needs_certificate")
    if certificate is not None:
        _certificate_fits(certificate, path, exam, report)
    if basis is not None and exam.takes_language is False:
        report.add("exemptions", "not_allowed")
    return certificate, basis


def _certificate_fits(certificate: str, path: str, exam: _Exam, report: _Report) -> None:
    if certificate not in _CERTIFICATE_LANGUAGE:
        report.add(path, "unknown_certificate")
    elif exam.language is not None and _CERTIFICATE_LANGUAGE[certificate] != exam.language:
        language_vi, language_en = _LANGUAGES[exam.language]
        report.add(
            path,
            "certificate_language_mismatch",
            language_vi=language_vi[0].lower() + language_vi[1:],
            language_en=language_en,
        )


def _expiry(value: object, today: date, rules: FormRules, report: _Report) -> str | None:
    """A certificate valid up to the exam-procedures day (§4.8 13a); the day is a setting."""
    if _is_blank(value):
        return None
    path = "exemptions.certificate_expires_on"
    text = _text(value, path, report)
    if text is None:
        return None
    try:
        expires = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:
        expires = None
    if expires is None:
        report.add(path, "invalid_date")
        return None
    day = rules.certificates_valid_until or today
    if expires < day:
        report.add(path, "certificate_expired", day=day.isoformat())
        return None
    return expires.isoformat()


def _literature_level(value: object, exam: _Exam, report: _Report) -> int | None:
    """A Vietnamese-language certificate level, ≥ 3 of 6, for foreign nationals only (§4.8 13b)."""
    if value is None or value == "":
        return None
    path = "exemptions.literature_certificate_level"
    level = _integer(value, path, *_LITERATURE_LEVELS, report)
    if level is not None and not exam.foreign_national:
        report.add(path, "foreign_only")
        return None
    return level


def _integer(value: object, path: str, low: int, high: int, report: _Report) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        report.wrong_type(path, "integer")
        return None
    if not low <= value <= high:
        report.add(path, "out_of_range", low=low, high=high)
        return None
    return value


def _class_12(value: object, report: _Report) -> str | None:
    if _is_blank(value):
        return None
    name = _text(value, "class_12", report)
    if name is not None and not _CLASS_NAME.fullmatch(name):
        report.add("class_12", "invalid_class")
        return None
    return name


def _contact_address(value: object, report: _Report) -> str | None:
    return None if _is_blank(value) else _address(value, "contact_address", report)


def _curriculum(
    value: object, candidate_type: str | None, rules: FormRules, report: _Report
) -> str | None:
    if _is_blank(value):
        return "GDPT2018"
    code = _choice(value, "curriculum", _CURRICULA, report)
    if code == "GDPT2006":
        if not rules.old_curriculum:
            report.add("curriculum", "old_curriculum_closed")
        elif candidate_type == "a":
            report.add("curriculum", "old_curriculum_type")
    return code


def _diploma_year(
    value: object, candidate_type: str | None, today: date, report: _Report
) -> int | None:
    """The year of the diploma a type c or d candidate holds (§4.6 10b)."""
    if value is None or value == "":
        return None
    if candidate_type is not None and candidate_type not in _DIPLOMA_TYPES:
        report.add("diploma_year", "not_for_type", types=", ".join(_DIPLOMA_TYPES))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        report.wrong_type("diploma_year", "integer")
        return None
    if not 1975 <= value <= today.year:
        report.add("diploma_year", "invalid_year", low=1975, high=today.year)
        return None
    return value


def _reserved_scores(
    value: object, candidate_type: str | None, today: date, rules: FormRules, report: _Report
) -> list[dict[str, Any]]:
    """Reserved scores (điểm bảo lưu, §4.8 item 14): types b and c, one per subject."""
    if value is None or value == []:
        return []
    items = _list(value, "reserved_scores", report)
    if items is None:
        return []
    if candidate_type is not None and candidate_type not in _RESERVING_TYPES:
        report.add("reserved_scores", "not_for_type", types=", ".join(_RESERVING_TYPES))
        return []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"reserved_scores.{index}"
        obj = _object(item, path, _RESERVED_SCORE_FIELDS, report)
        if obj is None:
            continue
        subject = _choice(obj.get("subject"), f"{path}.subject", _SUBJECTS, report)
        if subject is not None and subject in seen:
            report.add(f"{path}.subject", "duplicate")
        elif subject is not None:
            seen.add(subject)
        score = _score(obj.get("score"), f"{path}.score", rules, report)
        year = obj.get("exam_year")
        if isinstance(year, bool) or not isinstance(year, int):
            report.wrong_type(f"{path}.exam_year", "integer")
            year = None
        elif not 2000 <= year < today.year:
            report.add(f"{path}.exam_year", "invalid_year", low=2000, high=today.year - 1)
            year = None
        rows.append({"subject": subject, "score": score, "exam_year": year})
    return rows


def _score(value: object, path: str, rules: FormRules, report: _Report) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        report.add(path, "invalid_score")
        return None
    text = str(value).strip().replace(",", ".")
    if not _SCORE.fullmatch(text):
        report.add(path, "invalid_score")
        return None
    score = float(text)
    if score < rules.reserved_score_min:
        report.add(path, "score_below_threshold", low=f"{rules.reserved_score_min:g}")
        return None
    return score


def _encouragement(value: object, rules: FormRules, report: _Report) -> str | None:
    if _is_blank(value):
        return None
    code = _choice(value, "graduation_encouragement", _ENCOURAGEMENTS, report)
    if code == "VOCATIONAL_CERTIFICATE" and not rules.vocational_encouragement:
        report.add("graduation_encouragement", "abolished")
        return None
    return code


def _registration_unit(
    value: object,
    candidate_type: str | None,
    schools: list[dict[str, Any]] | None,
    catalog: Catalog,
    rules: FormRules,
    report: _Report,
) -> dict[str, str] | None:
    """Where the candidate registers (§4.6 11b): a grade-12 student's own school, by default.

    Free candidates register at a unit the DOET designates; the synthetic reference data has no
    list of those, so any school of the catalog stands for one (SYNTHETIC)."""
    grade_12 = next((row for row in schools or () if row["grade"] == 12), None)
    if value is None:
        if candidate_type == "a" and grade_12 and grade_12["school_code"] is not None:
            return {
                "province_code": grade_12["province_code"],
                "unit_code": grade_12["school_code"],
            }
        return None
    obj = _object(value, "registration_unit", _UNIT_FIELDS, report)
    if obj is None:
        return None
    province = _province(
        obj.get("province_code"), "registration_unit.province_code", catalog, report
    )
    unit = _text(obj.get("unit_code"), "registration_unit.unit_code", report)
    if unit is not None and not _is_digits(unit, 3):
        report.add("registration_unit.unit_code", "invalid_format", digits=3)
        return None
    if province is None or unit is None:
        return None
    if (province, unit) not in catalog.school_keys:
        report.add("registration_unit.unit_code", "unknown_school")
        return None
    if (
        rules.unit_is_grade_12_school
        and candidate_type == "a"
        and grade_12 is not None
        and (grade_12["province_code"], grade_12["school_code"]) != (province, unit)
    ):
        report.add("registration_unit.unit_code", "unit_not_school")
    return {"province_code": province, "unit_code": unit}


def _photo(value: object, rules: FormRules, report: _Report) -> str | None:
    """The sha256 of a photo stored by `POST /api/v1/me/photo` (its bytes are never in the form)."""
    if _is_blank(value):
        if rules.photo_required:
            report.add("photo_sha256", "required", PHOTO_REQUIRED)
        return None
    digest = _text(value, "photo_sha256", report)
    if digest is not None and not _SHA256.fullmatch(digest):
        report.add("photo_sha256", "invalid_hash")
        return None
    return digest


def _priority_group(value: object, report: _Report) -> str | None:
    return None if _is_blank(value) else _choice(value, "priority_group", _PRIORITY_GROUPS, report)


def _field_rank(error: FieldError) -> int:
    top = error.field.split(".", 1)[0]
    return FIELDS.index(top) if top in FIELDS else len(FIELDS)


def validate_registration(
    body: object, ctx: CandidateContext, catalog: Catalog, rules: FormRules = DEFAULT_RULES
) -> dict[str, Any]:
    """Validate a submitted registration form and return its canonical form.

    Args:
        body: the decoded JSON body of `PUT /api/v1/me/registration`.
        ctx: the logged-in candidate's roster ID and today's date.
        catalog: the province and school codes that exist.
        rules: the configurable rules (`FormRules`); the 2025 defaults when not given.

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
    curriculum = _curriculum(body.get("curriculum"), candidate_type, rules, report)
    track = (
        "THPT"
        if _is_blank(body.get("study_track"))
        else _choice(body.get("study_track"), "study_track", _STUDY_TRACKS, report)
    )
    electives = _electives(body.get("electives"), candidate_type, curriculum, track, report)
    fewest = 1 if candidate_type in _FREE_CHOICE_TYPES or curriculum == "GDPT2006" else 2
    takes_language = _takes_language(body.get("electives"), electives, fewest)
    language = _foreign_language(body.get("foreign_language"), takes_language, report)
    foreign_national = _flag(body.get("foreign_national"), "foreign_national", report)
    schools = _schools(body.get("schools"), candidate_type, catalog, report)
    exam = _Exam(takes_language, language, electives, foreign_national, ctx.today)
    form: dict[str, Any] = {
        "full_name": _full_name(body.get("full_name"), report),
        "date_of_birth": born.isoformat() if born else None,
        "sex": sex,
        "national_id": _national_id(body.get("national_id"), ctx, born, sex, report),
        "ethnicity": _ethnicity(body.get("ethnicity"), report),
        "birthplace": _birthplace(body.get("birthplace"), report),
        "residence": _residence(body.get("residence"), catalog, report),
        "schools": schools,
        "phone": _phone(body.get("phone"), report),
        "email": _email(body.get("email"), report),
        "candidate_type": candidate_type,
        "purposes": _purposes(body.get("purposes"), report),
        "electives": electives,
        "foreign_language": language,
        "exemptions": _exemptions(body.get("exemptions"), exam, rules, report),
        "priority_group": _priority_group(body.get("priority_group"), report),
        "exam_site_province": _province(
            body.get("exam_site_province"), "exam_site_province", catalog, report
        ),
        "class_12": _class_12(body.get("class_12"), report),
        "contact_address": _contact_address(body.get("contact_address"), report),
        "curriculum": curriculum,
        "study_track": track,
        "foreign_national": foreign_national,
        "diploma_year": _diploma_year(body.get("diploma_year"), candidate_type, ctx.today, report),
        "reserved_scores": _reserved_scores(
            body.get("reserved_scores"), candidate_type, ctx.today, rules, report
        ),
        "graduation_priority": None
        if _is_blank(body.get("graduation_priority"))
        else _choice(
            body.get("graduation_priority"), "graduation_priority", _GRADUATION_PRIORITIES, report
        ),
        "graduation_encouragement": _encouragement(
            body.get("graduation_encouragement"), rules, report
        ),
        "registration_unit": _registration_unit(
            body.get("registration_unit"), candidate_type, schools, catalog, rules, report
        ),
        "photo_sha256": _photo(body.get("photo_sha256"), rules, report),
    }
    if report.errors:
        raise InvalidRegistration(errors=tuple(sorted(report.errors, key=_field_rank)))
    return form
