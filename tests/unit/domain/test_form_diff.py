"""Version differences (engine.domain.form_diff) and the unit's review state, pure."""

from __future__ import annotations

from typing import Any

from engine.domain.form_diff import Change, diff_forms, version_diffs
from engine.domain.unit_review import review_state

FORM: dict[str, Any] = {
    "full_name": "NGUYỄN VĂN AN",
    "residence": {"address": "Số 1 Lê Lợi", "province_code": "01", "kv1_over_18_months": False},
    "schools": [
        {"grade": 10, "province_code": "01", "school_code": "001"},
        {"grade": 11, "province_code": "01", "school_code": "001"},
    ],
    "electives": ["LI", "HOA"],
    "exemptions": None,
}


def test_equal_forms_and_a_first_version_have_no_changes() -> None:
    assert diff_forms(FORM, dict(FORM)) == ()
    assert diff_forms(None, FORM) == ()


def test_leaves_are_compared_by_path_objects_by_key_object_lists_by_position() -> None:
    after = {
        **FORM,
        "residence": {**FORM["residence"], "kv1_over_18_months": True},
        "schools": [FORM["schools"][0], {**FORM["schools"][1], "school_code": "002"}],
        "electives": ["SU", "DIA"],
        "exemptions": {"foreign_language_certificate": "IELTS"},
    }
    assert diff_forms(FORM, after) == (
        Change("residence.kv1_over_18_months", False, True),
        Change("schools.1.school_code", "001", "002"),
        Change("electives", ["LI", "HOA"], ["SU", "DIA"]),
        Change("exemptions.foreign_language_certificate", None, "IELTS"),
    )


def test_fields_only_one_version_has_are_changes_too() -> None:
    """A field the form gains later (or loses) shows without the diff knowing its name."""
    after = {**FORM, "grade12_class": "12A3"}
    del after["exemptions"]
    assert diff_forms(FORM, after) == (Change("grade12_class", None, "12A3"),)
    shorter = {**FORM, "schools": FORM["schools"][:1]}
    assert diff_forms(FORM, shorter) == (
        Change("schools.1.grade", 11, None),
        Change("schools.1.province_code", "01", None),
        Change("schools.1.school_code", "001", None),
    )


def test_each_version_is_compared_with_the_one_before_it() -> None:
    second = {**FORM, "full_name": "NGUYỄN VĂN BÌNH"}
    third = {**second, "electives": ["LI", "SINH"]}
    diffs = version_diffs([(3, third), (1, FORM), (2, second)])
    assert diffs[1] == ()
    assert diffs[2] == (Change("full_name", "NGUYỄN VĂN AN", "NGUYỄN VĂN BÌNH"),)
    assert diffs[3] == (Change("electives", ["LI", "HOA"], ["LI", "SINH"]),)


def test_review_state_is_derived_from_the_current_and_the_reviewed_version() -> None:
    assert review_state(None, None, None) == "not_registered"
    assert review_state(1, None, None) == "unreviewed"
    assert review_state(2, 2, "confirm") == "confirmed"
    assert review_state(3, 2, "confirm") == "changed"
    assert review_state(2, 2, "return") == "returned"
    assert review_state(3, 2, "return") == "changed"
