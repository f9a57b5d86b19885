"""Unit tests of `engine.domain.registration`: every form rule, accepted and rejected, with error
paths."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from typing import Any

import pytest

from engine.domain import reference
from engine.domain.registration import (
    FIELDS,
    CandidateContext,
    Catalog,
    check_national_id,
    validate_registration,
)
from engine.errors import InvalidRegistration

TODAY = date(2026, 4, 1)
NATIONAL_ID = "001308012345"  # Hà Nội, female born in the 2000s (3), year 08
CTX = CandidateContext(national_id=NATIONAL_ID, today=TODAY)
CATALOG = Catalog.from_reference()


def valid_form() -> dict[str, Any]:
    """A type-a (grade-12) candidate whose ID agrees with her date of birth and sex."""
    return {
        "full_name": "Nguyễn Thị Minh Anh",
        "date_of_birth": "2008-03-15",
        "sex": "female",
        "national_id": NATIONAL_ID,
        "ethnicity": "Kinh",
        "birthplace": "TP Hà Nội",
        "residence": {
            "address": "Số 12 ngõ 34 phố Huế, phường Hai Bà Trưng",
            "province_code": "01",
            "commune_code": None,
            "kv1_over_18_months": False,
            "district_code": None,
            "difficult_commune_over_18_months": False,
        },
        "schools": [
            {"grade": 10, "province_code": "01", "school_code": "001"},
            {"grade": 11, "province_code": "01", "school_code": "001"},
            {"grade": 12, "province_code": "01", "school_code": "002"},
        ],
        "phone": "0912345678",
        "email": "minhanh@example.vn",
        "candidate_type": "a",
        "purposes": ["graduation", "admission"],
        "electives": ["LI", "NN"],
        "foreign_language": "N1",
        "exemptions": None,
        "priority_group": None,
        "exam_site_province": "01",
    }


def form_with(**changes: Any) -> dict[str, Any]:
    form = valid_form()
    form.update(changes)
    return form


def form_without(*fields: str) -> dict[str, Any]:
    form = valid_form()
    for field in fields:
        del form[field]
    return form


def accept(body: object, ctx: CandidateContext = CTX) -> dict[str, Any]:
    return validate_registration(body, ctx, CATALOG)


def reject(body: object, ctx: CandidateContext = CTX) -> list[tuple[str, str]]:
    """The (field, code) of every error `body` is rejected with."""
    with pytest.raises(InvalidRegistration) as caught:
        validate_registration(body, ctx, CATALOG)
    return [(error.field, error.code) for error in caught.value.errors]


def identity(born: str, sex: str, digit: str, yy: str) -> tuple[dict[str, Any], CandidateContext]:
    """A form and context whose roster ID has the given century/sex digit and year digits."""
    national_id = f"001{digit}{yy}012345"
    form = form_with(date_of_birth=born, sex=sex, national_id=national_id)
    return form, CandidateContext(national_id=national_id, today=TODAY)


# --- the whole form ---------------------------------------------------------------------------


def test_valid_form_is_accepted_in_canonical_form_and_field_order() -> None:
    result = accept(valid_form())

    assert list(result) == list(FIELDS)
    assert result == {
        "full_name": "NGUYỄN THỊ MINH ANH",
        "date_of_birth": "2008-03-15",
        "sex": "female",
        "national_id": NATIONAL_ID,
        "ethnicity": "Kinh",
        "birthplace": "TP Hà Nội",
        "residence": {
            "address": "Số 12 ngõ 34 phố Huế, phường Hai Bà Trưng",
            "province_code": "01",
            "commune_code": None,
            "kv1_over_18_months": False,
            "district_code": None,
            "difficult_commune_over_18_months": False,
        },
        "schools": [
            {"grade": 10, "province_code": "01", "school_code": "001"},
            {"grade": 11, "province_code": "01", "school_code": "001"},
            {"grade": 12, "province_code": "01", "school_code": "002"},
        ],
        "phone": "0912345678",
        "email": "minhanh@example.vn",
        "candidate_type": "a",
        "purposes": ["graduation", "admission"],
        "electives": ["LI", "NN"],
        "foreign_language": "N1",
        "exemptions": None,
        "priority_group": None,
        "exam_site_province": "01",
        "class_12": None,
        "contact_address": None,
        "curriculum": "GDPT2018",
        "study_track": "THPT",
        "foreign_national": False,
        "diploma_year": None,
        "reserved_scores": [],
        "graduation_priority": None,
        "graduation_encouragement": None,
        # A grade-12 student registers at the grade-12 school unless the form says otherwise.
        "registration_unit": {"province_code": "01", "unit_code": "002"},
        "photo_sha256": None,
    }
    assert json.loads(json.dumps(result)) == result


def test_optional_fields_absent_are_normalized_to_their_defaults() -> None:
    form = form_without("email", "exemptions", "priority_group")
    form["residence"] = {"address": "Thôn Nà Phặc, xã Bằng Thành", "province_code": "11"}

    result = accept(form)

    assert result["email"] is None
    assert result["exemptions"] is None
    assert result["priority_group"] is None
    assert result["residence"] == {
        "address": "Thôn Nà Phặc, xã Bằng Thành",
        "province_code": "11",
        "commune_code": None,
        "kv1_over_18_months": False,
        "district_code": None,
        "difficult_commune_over_18_months": False,
    }


@pytest.mark.parametrize("body", [[], "form", None, 42, True])
def test_body_that_is_not_an_object_is_one_error_on_the_whole_body(body: object) -> None:
    assert reject(body) == [("", "not_an_object")]


def test_all_errors_are_returned_at_once_in_form_order() -> None:
    body = form_with(phone="12345", full_name="A", electives=["LI"])

    assert reject(body) == [
        ("full_name", "too_short"),
        ("phone", "invalid_phone"),
        ("electives", "wrong_count"),
    ]


def test_every_error_has_a_vietnamese_and_an_english_message() -> None:
    with pytest.raises(InvalidRegistration) as caught:
        accept(form_without("full_name") | {"sex": "x", "extra": 1, "phone": "1"})

    errors = caught.value.errors
    assert {error.code for error in errors} == {
        "required",
        "invalid_choice",
        "unknown_field",
        "invalid_phone",
    }
    required = next(error for error in errors if error.code == "required")
    assert required.message == "Vui lòng nhập thông tin này."
    assert required.message_en == "This field is required."
    for error in errors:
        assert error.message and error.message_en and error.message != error.message_en
        assert unicodedata.is_normalized("NFC", error.message)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (form_with(nickname="Anh"), [("nickname", "unknown_field")]),
        (
            form_with(residence=valid_form()["residence"] | {"ward": "Hàng Bài"}),
            [("residence.ward", "unknown_field")],
        ),
        (
            form_with(
                schools=[
                    {"grade": 10, "province_code": "01", "school_code": "001"},
                    {"grade": 11, "province_code": "01", "school_code": "001", "class": "11A1"},
                    {"grade": 12, "province_code": "01", "school_code": "002"},
                ]
            ),
            [("schools.1.class", "unknown_field")],
        ),
        (
            form_with(exemptions={"foreign_language_certificate": "IELTS", "score": 6.5}),
            [("exemptions.score", "unknown_field")],
        ),
    ],
)
def test_unknown_fields_are_rejected_at_their_path(
    body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert reject(body) == expected


REQUIRED_FIELDS = [
    "full_name",
    "date_of_birth",
    "sex",
    "national_id",
    "ethnicity",
    "birthplace",
    "residence",
    "schools",
    "phone",
    "candidate_type",
    "purposes",
    "electives",
    "exam_site_province",
]


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_missing_required_field_is_reported(field: str) -> None:
    assert reject(form_without(field)) == [(field, "required")]


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_null_required_field_is_reported_as_missing(field: str) -> None:
    assert reject(form_with(**{field: None})) == [(field, "required")]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("full_name", 123, "full_name"),
        ("national_id", 1308012345, "national_id"),
        ("sex", True, "sex"),
        ("email", 5, "email"),
        ("schools", "01-001", "schools"),
        ("purposes", "graduation", "purposes"),
        ("electives", "LI,NN", "electives"),
        ("electives", ["NN", 7], "electives.1"),
        ("residence", "Hà Nội", "residence"),
        ("exemptions", ["IELTS"], "exemptions"),
        ("priority_group", 1, "priority_group"),
        ("residence", {"address": "Số 1 phố Huế", "province_code": 1}, "residence.province_code"),
        (
            "residence",
            {"address": "Số 1 phố Huế", "province_code": "01", "kv1_over_18_months": "yes"},
            "residence.kv1_over_18_months",
        ),
        (
            "residence",
            {"address": "Số 1 phố Huế", "province_code": "01", "kv1_over_18_months": 1},
            "residence.kv1_over_18_months",
        ),
    ],
)
def test_wrong_json_type_is_reported(field: str, value: object, path: str) -> None:
    assert reject(form_with(**{field: value})) == [(path, "wrong_type")]


@pytest.mark.parametrize("grade", [True, "12", 12.0, [12]])
def test_grade_that_is_not_an_integer_is_a_wrong_type(grade: object) -> None:
    form = valid_form()
    form["schools"][2]["grade"] = grade

    assert reject(form) == [("schools.2.grade", "wrong_type")]


# --- full_name --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  nguyễn   văn   an ", "NGUYỄN VĂN AN"),
        ("Nguyễn\tThị\u00a0Lan", "NGUYỄN THỊ LAN"),
        (unicodedata.normalize("NFD", "Trần Thị Ngọc Ánh"), "TRẦN THỊ NGỌC ÁNH"),
        ("Đặng Ê-đê H'Hen", "ĐẶNG Ê-ĐÊ H'HEN"),
        ("Lê Ân", "LÊ ÂN"),
        ("Ζωΐ Νικολάου", "ΖΩΪ́ ΝΙΚΟΛΆΟΥ"),  # upper() of ΐ is not NFC until renormalized
    ],
)
def test_full_name_is_nfc_upper_case_with_collapsed_spaces(raw: str, normalized: str) -> None:
    name = accept(form_with(full_name=raw))["full_name"]

    assert name == normalized
    assert unicodedata.is_normalized("NFC", name)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("A", "too_short"),
        ("  B  ", "too_short"),
        ("A" * 81, "too_long"),
        ("Nguyễn Văn 3", "invalid_characters"),
        ("Nguyễn_Văn", "invalid_characters"),
        ("Lê Văn A.", "invalid_characters"),
        ("Anh 😀", "invalid_characters"),
        ("--", "invalid_characters"),
    ],
)
def test_full_name_rejects_bad_length_and_characters(raw: str, code: str) -> None:
    assert reject(form_with(full_name=raw)) == [("full_name", code)]


def test_full_name_of_80_letters_is_accepted() -> None:
    assert accept(form_with(full_name="a" * 80))["full_name"] == "A" * 80


# --- date_of_birth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["15/03/2008", "2008-3-15", "2008-02-30", "20080315", "2008-W11-6", "2008-03-15T00:00"]
)
def test_date_of_birth_that_is_not_an_iso_date_is_invalid(raw: str) -> None:
    assert reject(form_with(date_of_birth=raw)) == [("date_of_birth", "invalid_date")]


@pytest.mark.parametrize(
    ("born", "sex", "digit", "yy"),
    [
        ("2012-04-01", "female", "3", "12"),  # 14 today
        ("1945-04-02", "male", "0", "45"),  # 80 until tomorrow
    ],
)
def test_date_of_birth_at_the_age_limits_is_accepted(
    born: str, sex: str, digit: str, yy: str
) -> None:
    form, ctx = identity(born, sex, digit, yy)

    assert accept(form, ctx)["date_of_birth"] == born


@pytest.mark.parametrize("born", ["2012-04-02", "1945-04-01", "2027-01-01", "1890-01-01"])
def test_implausible_date_of_birth_is_rejected(born: str) -> None:
    assert reject(form_with(date_of_birth=born)) == [("date_of_birth", "implausible_date")]


# --- sex and national_id ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["nam", "nữ", "M", "Female", "other"])
def test_sex_must_be_male_or_female(raw: str) -> None:
    assert reject(form_with(sex=raw)) == [("sex", "invalid_choice")]


@pytest.mark.parametrize(
    "raw",
    ["00130801234", "0013080123456", "00130801234a", "００１３０８０１２３４５", "001 308 012"],
)
def test_national_id_must_be_twelve_ascii_digits(raw: str) -> None:
    assert reject(form_with(national_id=raw)) == [("national_id", "invalid_format")]


def test_national_id_must_equal_the_roster_id_of_the_logged_in_candidate() -> None:
    assert reject(form_with(national_id="079308012345")) == [("national_id", "mismatch_roster")]


CCCD_CASES = [
    # (born, sex, digit 4, expected codes): even = male, odd = female (domain.md §4.9 V1)
    ("2008-03-15", "female", "3", []),
    ("2008-03-15", "male", "2", []),
    ("2008-03-15", "female", "2", ["sex_mismatch"]),
    ("2008-03-15", "male", "3", ["sex_mismatch"]),
    ("1990-07-01", "male", "0", []),
    ("1990-07-01", "female", "1", []),
    ("1990-07-01", "male", "1", ["sex_mismatch"]),
    ("1990-07-01", "female", "0", ["sex_mismatch"]),
    ("2008-03-15", "female", "1", ["century_mismatch"]),
    ("2008-03-15", "male", "0", ["century_mismatch"]),
    ("1990-07-01", "male", "2", ["century_mismatch"]),
    ("1990-07-01", "female", "3", ["century_mismatch"]),
    ("2008-03-15", "female", "0", ["sex_mismatch", "century_mismatch"]),
    ("2008-03-15", "male", "4", ["century_mismatch"]),
]


@pytest.mark.parametrize(("born", "sex", "digit", "expected"), CCCD_CASES)
def test_national_id_digit_4_encodes_sex_and_century(
    born: str, sex: str, digit: str, expected: list[str]
) -> None:
    form, ctx = identity(born, sex, digit, born[2:4])

    if expected:
        assert reject(form, ctx) == [("national_id", code) for code in expected]
    else:
        assert accept(form, ctx)["national_id"] == ctx.national_id


@pytest.mark.parametrize(("born", "sex", "digit", "expected"), CCCD_CASES)
def test_check_national_id_reports_the_same_codes_for_the_roster_import(
    born: str, sex: str, digit: str, expected: list[str]
) -> None:
    national_id = f"001{digit}{born[2:4]}012345"

    problems = check_national_id(national_id, date.fromisoformat(born), sex)

    assert [code for code, _, _ in problems] == expected


@pytest.mark.parametrize(
    ("national_id", "born", "sex"),
    [("001408012345", date(2108, 1, 1), "male"), ("001508012345", date(2108, 1, 1), "female")],
)
def test_check_national_id_accepts_the_2100s_codes(national_id: str, born: date, sex: str) -> None:
    assert check_national_id(national_id, born, sex) == []


def test_check_national_id_reports_bad_format_and_rejects_unknown_sex() -> None:
    assert [p[0] for p in check_national_id("12345", date(2008, 3, 15), "male")] == [
        "invalid_format"
    ]
    with pytest.raises(ValueError, match="sex"):
        check_national_id(NATIONAL_ID, date(2008, 3, 15), "nam")


def test_check_national_id_messages_are_vietnamese_and_english() -> None:
    [(code, vi, en)] = check_national_id("001208012345", date(2008, 3, 15), "female")

    assert code == "sex_mismatch"
    assert "giới tính" in vi
    assert "sex" in en


@pytest.mark.parametrize(("yy", "ok"), [("08", True), ("07", False), ("80", False), ("09", False)])
def test_national_id_digits_5_and_6_are_the_birth_year(yy: str, ok: bool) -> None:
    form, ctx = identity("2008-03-15", "female", "3", yy)

    if ok:
        accept(form, ctx)
    else:
        assert reject(form, ctx) == [("national_id", "birth_year_mismatch")]


@pytest.mark.parametrize("prefix", ["999", "000", "840", "079"])
def test_national_id_with_any_3_digit_prefix_is_accepted(prefix: str) -> None:
    national_id = f"{prefix}308012345"
    ctx = CandidateContext(national_id=national_id, today=TODAY)

    assert accept(form_with(national_id=national_id), ctx)["national_id"] == national_id


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"date_of_birth": "2008-02-30"}, [("date_of_birth", "invalid_date")]),
        ({"date_of_birth": "2020-01-01"}, [("date_of_birth", "implausible_date")]),
        ({"sex": "nữ"}, [("sex", "invalid_choice")]),
    ],
)
def test_national_id_cross_checks_are_skipped_when_date_or_sex_is_invalid(
    changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    # Digit 4 '0' and year '99' would both be wrong for a woman born in 2008.
    national_id = "001099012345"
    ctx = CandidateContext(national_id=national_id, today=TODAY)

    assert reject(form_with(national_id=national_id, **changes), ctx) == expected


# --- ethnicity and birthplace -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Kinh", "Kinh"),
        ("01", "Kinh"),
        ("KINH", "Kinh"),
        ("Khơ-me", "Khơ-me"),
        ("khome", "Khơ-me"),
        ("Kho Me", "Khơ-me"),
        ("e de", "Ê-đê"),
        ("Xo-dang", "Xơ-Đăng"),
        ("hmong", "HMông"),
        ("Bru Van Kieu", "Bru-Vân Kiều"),
        (unicodedata.normalize("NFD", "Mường"), "Mường"),
        ("54", "Rơ Măm"),
    ],
)
def test_ethnicity_accepts_code_or_name_and_returns_the_canonical_name(
    raw: str, canonical: str
) -> None:
    assert accept(form_with(ethnicity=raw))["ethnicity"] == canonical


@pytest.mark.parametrize(("code", "name"), reference.ETHNICITIES)
def test_every_ethnicity_resolves_from_its_code_and_its_name(code: str, name: str) -> None:
    assert accept(form_with(ethnicity=code))["ethnicity"] == name
    assert accept(form_with(ethnicity=name.upper()))["ethnicity"] == name


@pytest.mark.parametrize("raw", ["Việt", "55", "1", "Kinh Tày", "Khmer Krom"])
def test_unknown_ethnicity_is_rejected(raw: str) -> None:
    assert reject(form_with(ethnicity=raw)) == [("ethnicity", "unknown_ethnicity")]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("TP Hà Nội", "TP Hà Nội"),
        ("Hà Nội", "TP Hà Nội"),
        ("ha noi", "TP Hà Nội"),
        ("thành phố hồ chí minh", "TP Hồ Chí Minh"),
        ("TP HCM", "TP Hồ Chí Minh"),
        ("Thua Thien Hue", "Thừa Thiên Huế"),
        ("TP Huế", "TP Huế"),
        ("Bà Rịa - Vũng Tàu", "Bà Rịa – Vũng Tàu"),
        ("tỉnh yên bái", "Yên Bái"),
        ("Nhật Bản", "Nhật Bản"),
        ("  Hoa   Kỳ ", "Hoa Kỳ"),
        ("Cộng hòa Séc", "Cộng hòa Séc"),
    ],
)
def test_birthplace_is_a_canonical_province_or_a_country(raw: str, canonical: str) -> None:
    assert accept(form_with(birthplace=raw))["birthplace"] == canonical


@pytest.mark.parametrize(
    "province", [p for p in reference.PROVINCES if p.cccd_code is not None], ids=lambda p: p.code
)
def test_every_pre_2025_province_name_is_its_own_canonical_birthplace(
    province: reference.Province,
) -> None:
    assert accept(form_with(birthplace=province.name))["birthplace"] == province.name


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("H", "too_short"),
        ("A" * 101, "too_long"),
        ("A" * 61, "too_long"),
        ("Tokyo 3", "invalid_characters"),
        ("Hà Nội, Việt Nam", "invalid_characters"),
    ],
)
def test_birthplace_rejects_bad_length_and_characters(raw: str, code: str) -> None:
    assert reject(form_with(birthplace=raw)) == [("birthplace", code)]


# --- residence --------------------------------------------------------------------------------


def residence(**changes: Any) -> dict[str, Any]:
    return {"address": "Số 5 phố Tràng Tiền", "province_code": "01"} | changes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (residence(province_code="99"), [("residence.province_code", "unknown_province")]),
        (residence(province_code="20"), [("residence.province_code", "unknown_province")]),
        (residence(address="Số 1"), [("residence.address", "too_short")]),
        (residence(address="x" * 201), [("residence.address", "too_long")]),
        (residence(address="Số 5\u200b phố Huế"), [("residence.address", "invalid_characters")]),
        (residence(commune_code="7"), [("residence.commune_code", "invalid_format")]),
        (residence(commune_code="abc"), [("residence.commune_code", "invalid_format")]),
        (residence(commune_code=7), [("residence.commune_code", "wrong_type")]),
        ({"address": "Số 5 phố Tràng Tiền"}, [("residence.province_code", "required")]),
    ],
)
def test_residence_fields_are_checked_at_their_path(
    value: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert reject(form_with(residence=value)) == expected


def test_residence_keeps_commune_code_and_kv1_flag() -> None:
    value = residence(commune_code="07", kv1_over_18_months=True)

    assert accept(form_with(residence=value))["residence"] == {
        "address": "Số 5 phố Tràng Tiền",
        "province_code": "01",
        "commune_code": "07",
        "kv1_over_18_months": True,
        "district_code": None,
        "difficult_commune_over_18_months": False,
    }


# --- schools ----------------------------------------------------------------------------------


def school(grade: object, province_code: object = "01", school_code: object = "001") -> Any:
    return {"grade": grade, "province_code": province_code, "school_code": school_code}


def test_unknown_school_is_reported_at_its_row_and_field() -> None:
    body = form_with(schools=[school(10), school(11), school(12, "01", "777")])

    assert reject(body) == [("schools.2.school_code", "unknown_school")]


def test_school_in_an_unknown_province_is_reported_on_the_province_only() -> None:
    body = form_with(schools=[school(10, "99", "001"), school(11), school(12)])

    assert reject(body) == [("schools.0.province_code", "unknown_province")]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [school(10), school(11), school(12, "01", "1")],
            [("schools.2.school_code", "invalid_format")],
        ),
        ([school(10), school(11), school(9)], [("schools.2.grade", "out_of_range")]),
        ([school(10), school(11)], [("schools", "grades_incomplete")]),
        ([], [("schools", "grades_incomplete")]),
        (
            [school(10), school(11), school(11)],
            [("schools.2.grade", "duplicate_grade"), ("schools", "grades_incomplete")],
        ),
        (
            [school(10), school(11), school(12), school(12)],
            [("schools", "wrong_count"), ("schools.3.grade", "duplicate_grade")],
        ),
        ([school(10), school(11), "01-001"], [("schools.2", "wrong_type")]),
        (
            [school(10), school(11), {}],
            [
                ("schools.2.grade", "required"),
                ("schools.2.province_code", "required"),
                ("schools.2.school_code", "required"),
            ],
        ),
    ],
)
def test_school_rows_are_checked_per_row_and_grade_12_needs_all_three_grades(
    rows: list[Any], expected: list[tuple[str, str]]
) -> None:
    assert reject(form_with(schools=rows)) == expected


def test_schools_are_sorted_by_grade() -> None:
    rows = [school(12, "02", "003"), school(10), school(11, "01", "900")]

    assert [row["grade"] for row in accept(form_with(schools=rows))["schools"]] == [10, 11, 12]


@pytest.mark.parametrize("code", ["800", "900"])
def test_special_school_codes_abroad_and_military_are_accepted(code: str) -> None:
    rows = [school(10, "01", code), school(11), school(12)]

    assert accept(form_with(schools=rows))["schools"][0]["school_code"] == code


@pytest.mark.parametrize(
    ("candidate_type", "rows"),
    [("b", []), ("c", [school(12)]), ("d", [school(11), school(10)]), ("b", None)],
)
def test_free_candidates_give_zero_to_three_schools(candidate_type: str, rows: Any) -> None:
    result = accept(form_with(candidate_type=candidate_type, schools=rows))

    assert [row["grade"] for row in result["schools"]] == sorted(row["grade"] for row in rows or [])


def test_free_candidate_schools_must_still_have_distinct_grades() -> None:
    body = form_with(candidate_type="b", schools=[school(12), school(12)])

    assert reject(body) == [("schools.1.grade", "duplicate_grade")]


def test_catalog_from_rows_is_what_the_validator_checks_schools_against() -> None:
    catalog = Catalog.from_rows(["01"], [("01", "123")])
    good = form_with(
        schools=[school(10, "01", "123"), school(11, "01", "123"), school(12, "01", "123")]
    )

    assert validate_registration(good, CTX, catalog)["schools"][0]["school_code"] == "123"
    with pytest.raises(InvalidRegistration) as caught:
        validate_registration(valid_form(), CTX, catalog)
    assert [e.field for e in caught.value.errors] == [f"schools.{i}.school_code" for i in range(3)]


# --- phone and email --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("0912345678", "0912345678"),
        ("+84912345678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("+84 0912 345 678", "0912345678"),
        ("091.234.5678", "0912345678"),
        ("091-234-5678", "0912345678"),
        ("0312345678", "0312345678"),
        ("0561234567", "0561234567"),
        ("0701234567", "0701234567"),
        ("0861234567", "0861234567"),
    ],
)
def test_phone_is_normalized_to_a_ten_digit_local_mobile_number(raw: str, normalized: str) -> None:
    assert accept(form_with(phone=raw))["phone"] == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "0241234567",
        "0412345678",
        "0612345678",
        "091234567",
        "09123456789",
        "+1 912345678",
        "phone",
        "０９１２３４５６７８",
        "+85912345678",
    ],
)
def test_phone_that_is_not_a_vietnamese_mobile_is_rejected(raw: str) -> None:
    assert reject(form_with(phone=raw)) == [("phone", "invalid_phone")]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  an.nguyen+exam@mail.example.vn ", "an.nguyen+exam@mail.example.vn"),
        ("", None),
        (None, None),
    ],
)
def test_email_is_optional_and_trimmed(raw: str | None, normalized: str | None) -> None:
    assert accept(form_with(email=raw))["email"] == normalized


@pytest.mark.parametrize(
    "raw",
    ["minhanh", "a@b", "a@@b.vn", "a b@c.vn", "a@b.c", "a@.vn", "@example.vn", "a" * 250 + "@x.vn"],
)
def test_invalid_email_is_rejected(raw: str) -> None:
    assert reject(form_with(email=raw)) == [("email", "invalid_email")]


# --- candidate type and purposes --------------------------------------------------------------


@pytest.mark.parametrize("raw", ["e", "A", "tu do"])
def test_candidate_type_must_be_a_b_c_or_d(raw: str) -> None:
    assert reject(form_with(candidate_type=raw)) == [("candidate_type", "invalid_choice")]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [(["admission"], ["admission"]), (["admission", "graduation"], ["graduation", "admission"])],
)
def test_purposes_are_returned_in_canonical_order(raw: list[str], normalized: list[str]) -> None:
    assert accept(form_with(purposes=raw))["purposes"] == normalized


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], [("purposes", "empty")]),
        (["university"], [("purposes.0", "invalid_choice")]),
        (["graduation", "graduation"], [("purposes.1", "duplicate")]),
    ],
)
def test_purposes_must_be_a_non_empty_set_of_known_purposes(
    raw: list[str], expected: list[tuple[str, str]]
) -> None:
    assert reject(form_with(purposes=raw)) == expected


# --- electives, language, exemptions ----------------------------------------------------------


@pytest.mark.parametrize(
    "pair", [["LI", "HOA"], ["CNCN", "TIN"], ["SU", "CNNN"], ["GDKTPL", "DIA"]]
)
def test_two_distinct_electives_are_accepted_in_the_order_given(pair: list[str]) -> None:
    result = accept(form_with(electives=pair, foreign_language=None))

    assert result["electives"] == pair
    assert result["foreign_language"] is None


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        (["CNCN", "CNNN"], [("electives", "exclusive_subjects")]),
        (["LI", "LI"], [("electives.1", "duplicate")]),
        (["LI"], [("electives", "wrong_count")]),
        (["LI", "HOA", "SINH"], [("electives", "wrong_count")]),
        ([], [("electives", "wrong_count")]),
        (["LI", "VAN"], [("electives.1", "invalid_choice")]),
        (["li", "HOA"], [("electives.0", "invalid_choice")]),
    ],
)
def test_elective_combinations_that_break_the_rules_are_rejected(
    pair: list[str], expected: list[tuple[str, str]]
) -> None:
    assert reject(form_with(electives=pair, foreign_language=None)) == expected


@pytest.mark.parametrize("language", ["N1", "N2", "N3", "N4", "N5", "N6", "N7"])
def test_foreign_language_is_kept_when_nn_is_an_elective(language: str) -> None:
    assert accept(form_with(foreign_language=language))["foreign_language"] == language


@pytest.mark.parametrize("missing", [None, "", "absent"])
def test_foreign_language_is_required_when_nn_is_an_elective(missing: str | None) -> None:
    body = (
        form_without("foreign_language")
        if missing == "absent"
        else form_with(foreign_language=missing)
    )

    assert reject(body) == [("foreign_language", "required")]


def test_foreign_language_is_not_allowed_without_nn() -> None:
    body = form_with(electives=["LI", "HOA"], foreign_language="N1")

    assert reject(body) == [("foreign_language", "not_allowed")]


@pytest.mark.parametrize("raw", ["N8", "n1", "English", "N0"])
def test_unknown_foreign_language_code_is_rejected(raw: str) -> None:
    assert reject(form_with(foreign_language=raw)) == [("foreign_language", "invalid_choice")]


@pytest.mark.parametrize(
    ("certificate", "language"),
    [("IELTS", "N1"), ("VSTEP_3", "N1"), ("DELF_B1", "N3"), ("JLPT_N3", "N6")],
)
def test_certificate_of_the_chosen_language_is_accepted(certificate: str, language: str) -> None:
    exemption = {"foreign_language_certificate": certificate}

    result = accept(form_with(foreign_language=language, exemptions=exemption))

    assert result["exemptions"] == {
        **exemption,
        "foreign_language_basis": "CERTIFICATE",
        "certificate_score": None,
        "certificate_expires_on": None,
        "literature_certificate_level": None,
        "all_papers_reason": None,
    }


@pytest.mark.parametrize(
    ("certificate", "language"),
    [("IELTS", "N3"), ("HSK_3", "N1")] + [(code, "N7") for code, _, _ in reference.CERTIFICATES],
)
def test_certificate_of_another_language_is_rejected(certificate: str, language: str) -> None:
    body = form_with(
        foreign_language=language, exemptions={"foreign_language_certificate": certificate}
    )

    assert reject(body) == [
        ("exemptions.foreign_language_certificate", "certificate_language_mismatch")
    ]


@pytest.mark.parametrize(
    ("exemptions", "expected"),
    [
        (
            {"foreign_language_certificate": "TOEIC_OLD"},
            [("exemptions.foreign_language_certificate", "unknown_certificate")],
        ),
        ({}, [("exemptions.foreign_language_certificate", "required")]),
        (
            {"foreign_language_certificate": 4},
            [("exemptions.foreign_language_certificate", "wrong_type")],
        ),
    ],
)
def test_exemption_certificate_must_be_a_known_code(
    exemptions: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert reject(form_with(exemptions=exemptions)) == expected


def test_exemption_is_not_allowed_without_nn() -> None:
    body = form_with(
        electives=["LI", "HOA"],
        foreign_language=None,
        exemptions={"foreign_language_certificate": "IELTS"},
    )

    assert reject(body) == [("exemptions", "not_allowed")]


def test_certificate_mismatch_message_names_the_registered_language() -> None:
    body = form_with(foreign_language="N3", exemptions={"foreign_language_certificate": "IELTS"})

    with pytest.raises(InvalidRegistration) as caught:
        accept(body)

    [error] = caught.value.errors
    assert "tiếng Pháp" in error.message
    assert "French" in error.message_en


# --- priority group and exam site -------------------------------------------------------------


@pytest.mark.parametrize("group", ["01", "04", "07"])
def test_priority_group_01_to_07_is_accepted(group: str) -> None:
    assert accept(form_with(priority_group=group))["priority_group"] == group


@pytest.mark.parametrize("group", ["00", "08", "1", "UT1"])
def test_priority_group_outside_01_to_07_is_rejected(group: str) -> None:
    assert reject(form_with(priority_group=group)) == [("priority_group", "invalid_choice")]


def test_exam_site_province_must_be_a_known_province() -> None:
    assert accept(form_with(exam_site_province="02"))["exam_site_province"] == "02"
    assert reject(form_with(exam_site_province="99")) == [
        ("exam_site_province", "unknown_province")
    ]


# --- exactly as strict as PostgreSQL (issue 12) -----------------------------------------------
# Every accepted form must become a row: registration_versions.full_name is CHECKed at 2–80
# characters as stored (NFC, upper case), and text/jsonb refuse NUL (SQLSTATE 22P05).


def test_an_email_with_a_nul_character_is_rejected_not_queued() -> None:
    assert reject(form_with(email="a\u0000b@example.com")) == [("email", "invalid_characters")]


@pytest.mark.parametrize("raw", ["ß" * 80, "\ufb03" * 27, "ß" * 41])
def test_a_full_name_too_long_once_upper_cased_is_rejected(raw: str) -> None:
    assert len(raw) <= 80 < len(unicodedata.normalize("NFC", raw.upper()))
    with pytest.raises(InvalidRegistration) as caught:
        accept(form_with(full_name=raw))

    [error] = caught.value.errors
    assert (error.field, error.code) == ("full_name", "too_long")
    assert "80" in error.message and "80" in error.message_en
    assert "capital" in error.message_en  # says why a name of ≤ 80 letters is too long


def test_a_full_name_of_80_characters_once_upper_cased_is_accepted() -> None:
    assert accept(form_with(full_name="ß" * 40))["full_name"] == "SS" * 40
    assert accept(form_with(full_name="\ufb03" * 26 + "a"))["full_name"] == "FFI" * 26 + "A"


CONTROL_CHARACTERS = ["\u0000", "\u0001", "\u0008", "\u000b", "\u000c", "\u001b", "\u001f"]
CONTROL_CHARACTERS += ["\u007f", "\u0080", "\u0085", "\u009f", "\ud800", "\udfff"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("full_name", "Nguyễn {}Văn An"),
        ("email", "an{}@example.vn"),
        ("birthplace", "Nhật {}Bản"),
        ("birthplace", "TP Hà {}Nội"),  # a province: folding must not launder it
        ("ethnicity", "Ki{}nh"),
        ("sex", "female{}"),
        ("phone", "0912{}345678"),
        ("national_id", NATIONAL_ID + "{}"),
        ("date_of_birth", "2008-03-15{}"),
        ("priority_group", "0{}1"),
    ],
)
def test_control_characters_and_lone_surrogates_are_rejected_in_every_string_field(
    char: str, field: str, value: str
) -> None:
    assert reject(form_with(**{field: value.format(char)})) == [(field, "invalid_characters")]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("residence.address", lambda c: form_with(residence=residence(address=f"Số 5{c} phố"))),
        ("residence.province_code", lambda c: form_with(residence=residence(province_code=c))),
        (
            "exemptions.foreign_language_certificate",
            lambda c: form_with(exemptions={"foreign_language_certificate": f"IELTS{c}"}),
        ),
    ],
)
def test_control_characters_are_rejected_in_nested_string_fields(
    char: str, path: str, body: Any
) -> None:
    assert reject(body(char)) == [(path, "invalid_characters")]


def test_the_control_character_message_is_vietnamese_with_english_beside() -> None:
    with pytest.raises(InvalidRegistration) as caught:
        accept(form_with(email="a\u0000b@example.com"))

    [error] = caught.value.errors
    assert "điều khiển" in error.message and "control" in error.message_en


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Nguyễn\tThị\nLan", "NGUYỄN THỊ LAN"), ("Nguyễn\r\nLan", "NGUYỄN LAN")],
)
def test_tabs_and_line_breaks_are_whitespace_collapsed_to_one_space(
    raw: str, normalized: str
) -> None:
    assert accept(form_with(full_name=raw))["full_name"] == normalized


def test_hostile_but_storable_unicode_is_accepted_as_written() -> None:
    form = accept(
        form_with(
            full_name="Ｎguyễn Ŀ\u0301ê H\u0327\u0300",  # full-width, combining marks
            email="\u200fan😀@example.vn",  # an RTL mark and an emoji are storable
            residence=residence(address="Số 5 phố Huế 😀 \U00020000"),
        )
    )
    assert form["email"] == "\u200fan😀@example.vn"
    assert form["residence"]["address"] == "Số 5 phố Huế 😀 \U00020000"
    assert len(form["full_name"]) <= 80
