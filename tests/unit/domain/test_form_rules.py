"""Unit tests of the rest of the Phiếu (issue 13): the new fields' rules across fields, and the
rules that `FormRules` (the settings) switch, with Hypothesis where a rule has a range."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import reference
from engine.domain.registration import (
    FIELDS,
    CandidateContext,
    Catalog,
    FormRules,
    validate_registration,
)
from engine.errors import InvalidRegistration

TODAY = date(2026, 4, 1)
NATIONAL_ID = "001308012345"
CTX = CandidateContext(national_id=NATIONAL_ID, today=TODAY)
CATALOG = Catalog.from_reference()
SHA = "ab" * 32


def grade_12(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "full_name": "Nguyễn Thị Minh Anh",
        "date_of_birth": "2008-03-15",
        "sex": "female",
        "national_id": NATIONAL_ID,
        "ethnicity": "Kinh",
        "birthplace": "TP Hà Nội",
        "residence": {"address": "Số 12 phố Huế, Hai Bà Trưng", "province_code": "01"},
        "schools": [
            {"grade": 10, "province_code": "01", "school_code": "001"},
            {"grade": 11, "province_code": "01", "school_code": "001"},
            {"grade": 12, "province_code": "01", "school_code": "002"},
        ],
        "phone": "0912345678",
        "candidate_type": "a",
        "purposes": ["graduation"],
        "electives": ["LI", "NN"],
        "foreign_language": "N1",
        "exam_site_province": "01",
    }
    form.update(changes)
    return form


def free(candidate_type: str = "b", **changes: Any) -> dict[str, Any]:
    """A free candidate (types b, c, d): no schools needed."""
    form = grade_12(candidate_type=candidate_type, **changes)
    form.pop("schools")
    return form


def accept(body: object, rules: FormRules | None = None) -> dict[str, Any]:
    return validate_registration(body, CTX, CATALOG, rules or FormRules())


def reject(body: object, rules: FormRules | None = None) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRegistration) as caught:
        validate_registration(body, CTX, CATALOG, rules or FormRules())
    for error in caught.value.errors:
        assert error.message and error.message_en, "every error has both languages"
    return [(error.field, error.code) for error in caught.value.errors]


def test_an_old_client_s_form_gets_every_new_field_at_its_default() -> None:
    result = accept(grade_12())
    assert list(result) == list(FIELDS)
    assert result["curriculum"] == "GDPT2018" and result["study_track"] == "THPT"
    assert result["foreign_national"] is False and result["reserved_scores"] == []
    assert result["photo_sha256"] is None and result["class_12"] is None
    # A grade-12 student registers at the grade-12 school (domain.md §4.6 11b).
    assert result["registration_unit"] == {"province_code": "01", "unit_code": "002"}


def test_a_grade_12_student_must_register_at_the_grade_12_school_unless_settings_say_not() -> None:
    elsewhere = grade_12(registration_unit={"province_code": "01", "unit_code": "001"})
    assert reject(elsewhere) == [("registration_unit.unit_code", "unit_not_school")]
    relaxed = FormRules(unit_is_grade_12_school=False)
    assert accept(elsewhere, relaxed)["registration_unit"]["unit_code"] == "001"


def test_a_registration_unit_must_exist() -> None:
    body = free(registration_unit={"province_code": "01", "unit_code": "999"})
    assert reject(body) == [("registration_unit.unit_code", "unknown_school")]


@pytest.mark.parametrize("candidate_type", ["b", "c", "d"])
def test_free_candidates_may_take_the_2006_papers_while_the_setting_allows(
    candidate_type: str,
) -> None:
    body = free(candidate_type, curriculum="GDPT2006", electives=["KHTN", "NN"])
    assert accept(body)["electives"] == ["KHTN", "NN"]
    assert reject(body, FormRules(old_curriculum=False)) == [
        ("curriculum", "old_curriculum_closed")
    ]


def test_grade_12_students_sit_the_2018_papers() -> None:
    body = grade_12(curriculum="GDPT2006", electives=["KHXH", "NN"])
    assert reject(body) == [("curriculum", "old_curriculum_type")]


@pytest.mark.parametrize(
    ("electives", "track", "ok"),
    [
        (["KHTN", "NN"], "THPT", True),
        (["KHXH", "NN"], "THPT", True),
        (["KHXH"], "THPT", False),  # Ngoại ngữ is part of the THPT old format
        (["KHXH"], "GDTX", True),  # optional in continuing education (§5)
        (["KHTN", "KHXH", "NN"], "THPT", False),  # exactly one combined paper
        (["LI", "NN"], "THPT", False),  # a 2018 elective is no old paper
    ],
)
def test_the_2006_format_is_one_combined_paper_and_the_language(
    electives: list[str], track: str, ok: bool
) -> None:
    language = "N1" if "NN" in electives else None
    body = free(
        "b", curriculum="GDPT2006", study_track=track, electives=electives,
        foreign_language=language,
    )  # fmt: skip
    if ok:
        assert accept(body)["electives"] == electives
    else:
        assert ("electives", "old_curriculum_papers") in reject(body) or any(
            field.startswith("electives.") for field, _ in reject(body)
        )


@pytest.mark.parametrize("candidate_type", ["c", "d"])
def test_graduates_may_register_only_the_one_subject_they_need(candidate_type: str) -> None:
    body = free(candidate_type, electives=["HOA"], foreign_language=None)
    assert accept(body)["electives"] == ["HOA"]


def test_grade_12_students_still_choose_exactly_two() -> None:
    body = grade_12(electives=["HOA"], foreign_language=None)
    assert reject(body) == [("electives", "wrong_count")]


def test_the_literature_exemption_is_for_foreign_nationals_only() -> None:
    claim = {"literature_certificate_level": 4}
    assert reject(grade_12(exemptions=claim)) == [
        ("exemptions.literature_certificate_level", "foreign_only")
    ]
    result = accept(grade_12(exemptions=claim, foreign_national=True))
    assert result["exemptions"]["literature_certificate_level"] == 4


@given(st.integers(min_value=-5, max_value=12))
def test_the_literature_certificate_level_is_3_to_6(level: int) -> None:
    body = grade_12(foreign_national=True, exemptions={"literature_certificate_level": level})
    if 3 <= level <= 6:
        assert accept(body)["exemptions"]["literature_certificate_level"] == level
    else:
        assert reject(body) == [("exemptions.literature_certificate_level", "out_of_range")]


@pytest.mark.parametrize("reason", [code for code, _, _ in reference.ALL_PAPERS_REASONS])
def test_the_three_all_paper_exemptions_are_accepted(reason: str) -> None:
    assert (
        accept(grade_12(exemptions={"all_papers_reason": reason}))["exemptions"][
            "all_papers_reason"
        ]
        == reason
    )


def test_an_olympic_team_exemption_needs_no_certificate_but_needs_the_language() -> None:
    claim = {"foreign_language_basis": "OLYMPIC_TEAM"}
    assert accept(grade_12(exemptions=claim))["exemptions"]["foreign_language_basis"] == (
        "OLYMPIC_TEAM"
    )
    without_language = grade_12(electives=["LI", "HOA"], foreign_language=None, exemptions=claim)
    assert reject(without_language) == [("exemptions", "not_allowed")]


def test_a_certificate_basis_needs_the_certificate() -> None:
    body = grade_12(exemptions={"foreign_language_basis": "CERTIFICATE"})
    assert reject(body) == [("exemptions.foreign_language_certificate", "basis_needs_certificate")]


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
def test_a_certificate_must_be_valid_up_to_the_procedures_day(expires: date) -> None:
    day = date(2026, 6, 10)
    rules = FormRules(certificates_valid_until=day)
    body = grade_12(
        exemptions={
            "foreign_language_certificate": "IELTS",
            "certificate_expires_on": expires.isoformat(),
        }
    )
    if expires >= day:
        assert accept(body, rules)["exemptions"]["certificate_expires_on"] == expires.isoformat()
    else:
        assert reject(body, rules) == [("exemptions.certificate_expires_on", "certificate_expired")]


@given(
    st.one_of(
        st.decimals(min_value=0, max_value=10, places=2).map(str),
        st.floats(min_value=-3, max_value=13, allow_nan=False).map(lambda x: round(x, 2)),
    ),
    st.sampled_from([4.0, 5.0, 6.5]),
)
def test_a_reserved_score_is_0_to_10_and_at_least_the_threshold(
    score: str | float, threshold: float
) -> None:
    body = free("b", reserved_scores=[{"subject": "TOAN", "score": score, "exam_year": 2025}])
    rules = FormRules(reserved_score_min=threshold)
    value = float(score)
    if 0 <= value <= 10 and value >= threshold:
        assert accept(body, rules)["reserved_scores"][0]["score"] == value
    else:
        codes = reject(body, rules)
        assert codes in (
            [("reserved_scores.0.score", "invalid_score")],
            [("reserved_scores.0.score", "score_below_threshold")],
        )


@pytest.mark.parametrize("candidate_type", ["a", "d"])
def test_reserved_scores_are_for_types_b_and_c_only(candidate_type: str) -> None:
    scores = [{"subject": "TOAN", "score": 7, "exam_year": 2025}]
    body = (grade_12 if candidate_type == "a" else free)(
        **({} if candidate_type == "a" else {"candidate_type": candidate_type}),
        reserved_scores=scores,
    )
    assert reject(body) == [("reserved_scores", "not_for_type")]


def test_reserved_scores_name_each_subject_once_from_an_earlier_year() -> None:
    scores = [
        {"subject": "TOAN", "score": 7, "exam_year": 2025},
        {"subject": "TOAN", "score": 8, "exam_year": 2026},
    ]
    assert reject(free("c", reserved_scores=scores)) == [
        ("reserved_scores.1.subject", "duplicate"),
        ("reserved_scores.1.exam_year", "invalid_year"),
    ]


def test_the_vocational_encouragement_point_is_abolished_unless_a_setting_restores_it() -> None:
    body = grade_12(graduation_encouragement="VOCATIONAL_CERTIFICATE")
    assert reject(body) == [("graduation_encouragement", "abolished")]
    restored = FormRules(vocational_encouragement=True)
    assert accept(body, restored)["graduation_encouragement"] == "VOCATIONAL_CERTIFICATE"


def test_graduation_priority_is_one_of_the_tiers() -> None:
    assert accept(grade_12(graduation_priority="P050"))["graduation_priority"] == "P050"
    assert reject(grade_12(graduation_priority="P100")) == [
        ("graduation_priority", "invalid_choice")
    ]


def test_a_diploma_year_is_for_types_c_and_d() -> None:
    assert accept(free("c", diploma_year=2019))["diploma_year"] == 2019
    assert reject(free("b", diploma_year=2019)) == [("diploma_year", "not_for_type")]
    assert reject(free("d", diploma_year=2030)) == [("diploma_year", "invalid_year")]


def test_an_especially_difficult_commune_needs_its_code() -> None:
    residence = {
        "address": "Thôn Nà Phặc, xã Bằng Thành",
        "province_code": "11",
        "difficult_commune_over_18_months": True,
    }
    assert reject(grade_12(residence=residence)) == [("residence.commune_code", "commune_required")]
    with_code = accept(grade_12(residence={**residence, "commune_code": "07"}))
    assert with_code["residence"]["difficult_commune_over_18_months"] is True


@pytest.mark.parametrize(("code", "ok"), [("800", True), ("900", True), ("801", False)])
def test_the_special_school_codes_are_valid_in_every_province(code: str, ok: bool) -> None:
    schools = [
        {"grade": 10, "province_code": "01", "school_code": code},
        {"grade": 11, "province_code": "01", "school_code": "001"},
        {"grade": 12, "province_code": "01", "school_code": "002"},
    ]
    body = grade_12(schools=schools)
    if ok:
        # The reference data lists 800 and 900 in every province (domain.md §4.4 6c [P]).
        assert accept(body)["schools"][0]["school_code"] == code
    else:
        assert reject(body) == [("schools.0.school_code", "unknown_school")]


@given(st.text(max_size=70))
def test_a_photo_reference_is_a_sha256_or_nothing(text: str) -> None:
    body = grade_12(photo_sha256=text)
    stripped = " ".join(text.split())
    if not stripped:
        assert accept(body)["photo_sha256"] is None
        return
    try:
        result = accept(body)
    except InvalidRegistration as exc:
        assert {e.field for e in exc.errors} == {"photo_sha256"}
    else:
        assert result["photo_sha256"] == stripped and len(stripped) == 64


def test_the_photo_is_required_when_the_setting_says_so() -> None:
    assert reject(grade_12(), FormRules(photo_required=True)) == [("photo_sha256", "required")]
    assert accept(grade_12(photo_sha256=SHA), FormRules(photo_required=True))["photo_sha256"] == SHA


@pytest.mark.parametrize(("name", "ok"), [("12A1", True), ("12 Chuyên Toán", True), ("<b>", False)])
def test_a_class_name_is_short_and_plain(name: str, ok: bool) -> None:
    if ok:
        assert accept(grade_12(class_12=name))["class_12"] == name
    else:
        assert reject(grade_12(class_12=name)) == [("class_12", "invalid_class")]
