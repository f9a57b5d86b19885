"""The web form's flat inputs map to the very JSON body the API validates, and errors map back.

Driven through the real validator: a form prefilled from a stored registration and posted back
unchanged validates to the same canonical form, and every error path lands on an input.
"""

from __future__ import annotations

import random
import string
from datetime import date
from typing import Any

import pytest

from engine.domain.registration import FIELDS, CandidateContext, Catalog, validate_registration
from engine.domain.rostergen import generate_roster, sample_form
from engine.errors import FieldError, InvalidRegistration
from engine.pages import i18n, webform

CATALOG = Catalog.from_reference()
TODAY = date(2026, 3, 1)


def _validate(body: dict[str, Any], national_id: str) -> dict[str, Any]:
    return validate_registration(body, CandidateContext(national_id, TODAY), CATALOG)


def _posted(values: webform.Values) -> webform.Values:
    """What a browser posts for these values: every field, checkboxes only when checked."""
    return {name: list(items) for name, items in values.items()}


@pytest.mark.parametrize("seed", range(40))
def test_prefilled_form_posted_back_unchanged_validates_to_the_same_form(seed: int) -> None:
    entry = list(generate_roster(40, seed=11))[seed]
    canonical = _validate(sample_form(entry, random.Random(seed)), entry.national_id)
    body = webform.to_body(_posted(webform.from_form(canonical))).body
    assert _validate(body, entry.national_id) == canonical


def test_blank_inputs_become_null_and_are_reported_per_input() -> None:
    values = webform.collect(
        [
            ("candidate_type", "a"),
            ("schools.0.province_code", "01"),
            ("schools.0.school_code", "001"),
            ("csrf_token", "x" * 30),
            ("idempotency_key", "k"),
        ]
    )
    built = webform.to_body(values)
    assert set(built.body) == set(FIELDS), (
        "page controls (csrf_token, idempotency_key) must never reach the form"
    )
    assert built.body["full_name"] is None and built.body["exemptions"] is None
    # A grade-12 student sends all three rows, blank ones included, graded 10, 11, 12.
    assert [row["grade"] for row in built.body["schools"]] == [10, 11, 12]
    with pytest.raises(InvalidRegistration) as caught:
        _validate(built.body, "001208012345")
    inputs = webform.errors_by_input(caught.value.errors, "vi", built.school_rows)
    assert "schools.1.school_code" in inputs and "schools.0.school_code" not in inputs
    assert {"full_name", "purposes", "electives", "phone"} <= set(inputs)


def test_free_candidates_send_only_the_school_rows_they_filled_and_errors_find_the_row() -> None:
    values = webform.collect(
        [
            ("candidate_type", "b"),
            ("schools.2.province_code", "01"),
            ("schools.2.school_code", "999"),
        ]
    )
    built = webform.to_body(values)
    assert built.body["schools"] == [{"grade": 12, "province_code": "01", "school_code": "999"}]
    assert built.school_rows == (2,)
    with pytest.raises(InvalidRegistration) as caught:
        _validate(built.body, "001208012345")
    paths = {e.field for e in caught.value.errors}
    assert "schools.0.school_code" in paths  # the validator's index …
    inputs = webform.errors_by_input(caught.value.errors, "vi", built.school_rows)
    assert "schools.2.school_code" in inputs  # … is the page's third row
    assert "schools.0.school_code" not in inputs
    none = webform.to_body(webform.collect([("candidate_type", "c")]))
    assert none.body["schools"] is None


def test_checkbox_groups_and_the_certificate_map_to_lists_and_objects() -> None:
    values = webform.collect(
        [
            ("purposes", "graduation"),
            ("purposes", "admission"),
            ("electives", "LI"),
            ("electives", "NN"),
            ("exemptions.foreign_language_certificate", "IELTS"),
            ("residence.kv1_over_18_months", "1"),
        ]
    )
    body = webform.to_body(values).body
    assert body["purposes"] == ["graduation", "admission"]
    assert body["electives"] == ["LI", "NN"]
    assert body["exemptions"]["foreign_language_certificate"] == "IELTS"
    assert {k for k, v in body["exemptions"].items() if v is not None} == {
        "foreign_language_certificate"
    }
    assert body["residence"]["kv1_over_18_months"] is True
    assert webform.to_body({}).body["residence"]["kv1_over_18_months"] is False


@pytest.mark.parametrize(
    ("path", "rows", "expected"),
    [
        ("electives.1", (0, 1, 2), "electives"),
        ("electives", (0, 1, 2), "electives"),
        ("purposes.0", (0, 1, 2), "purposes"),
        ("exemptions", (0, 1, 2), "exemptions.foreign_language_certificate"),
        ("schools.0.school_code", (1, 2), "schools.1.school_code"),
        ("schools", (0, 1, 2), "schools"),
        ("residence.address", (0, 1, 2), "residence.address"),
        ("phone", (0, 1, 2), "phone"),
    ],
)
def test_error_paths_point_at_inputs(path: str, rows: tuple[int, ...], expected: str) -> None:
    assert webform.input_for(path, rows) == expected


def test_messages_follow_the_language_and_are_not_repeated() -> None:
    errors = [
        FieldError("electives.0", "duplicate", "Trùng.", "Repeated."),
        FieldError("electives.1", "duplicate", "Trùng.", "Repeated."),
    ]
    assert webform.errors_by_input(errors, "vi", (0, 1, 2)) == {"electives": ["Trùng."]}
    assert webform.errors_by_input(errors, "en", (0, 1, 2)) == {"electives": ["Repeated."]}


def test_every_catalog_entry_has_both_languages_and_the_same_placeholders() -> None:
    for key, (vi, en) in i18n.CATALOG.items():
        assert vi and en, key
        assert sorted(_placeholders(vi)) == sorted(_placeholders(en)), key
    t_vi, t_en = i18n.translator("vi"), i18n.translator("en")
    assert t_vi("retry_after", seconds=7) == "Vui lòng thử lại sau 7 giây."
    assert t_en("retry_after", seconds=7) == "Please try again in 7 seconds."
    # Parameters are escaped: the catalog is markup, what fills it is not.
    assert "&lt;b&gt;" in t_en("retry_after", seconds="<b>")


def test_language_choice_prefers_the_query_then_the_cookie_then_vietnamese() -> None:
    assert i18n.language(None, None) == "vi"
    assert i18n.language(None, "en") == "en"
    assert i18n.language("vi", "en") == "vi"
    assert i18n.language("fr", "en") == "en"
    assert i18n.language("fr", "xx") == "vi"


def _placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def test_every_new_field_of_the_phieu_round_trips_through_the_inputs() -> None:
    """Reserved scores, exemptions, the unit, flags and numbers come back as the validator's."""
    entry = next(iter(generate_roster(60, seed=5)))
    body = {
        **sample_form(entry, random.Random(3)),
        "candidate_type": "b",
        "schools": None,
        "foreign_national": True,
        "class_12": "12A9",
        "contact_address": "Số 9 phố Huế, Hà Nội",
        "study_track": "GDTX",
        "electives": ["LI", "NN"],
        "foreign_language": "N1",
        "exemptions": {
            "foreign_language_certificate": "IELTS",
            "certificate_expires_on": "2030-01-01",
            "literature_certificate_level": 4,
        },
        "reserved_scores": [
            {"subject": "TOAN", "score": 6.5, "exam_year": 2024},
            {"subject": "LI", "score": "7", "exam_year": 2023},
        ],
        "graduation_priority": "P025",
        "registration_unit": {"province_code": "01", "unit_code": "003"},
        "photo_sha256": "d" * 64,
    }
    canonical = _validate(body, entry.national_id)
    values = webform.from_form(canonical)
    assert values["reserved_scores.0.score"] == ["6.5"] and values["foreign_national"] == ["1"]
    assert _validate(webform.to_body(_posted(values)).body, entry.national_id) == canonical


def test_an_error_in_a_reserved_score_row_lands_on_that_row_s_input() -> None:
    values = webform.collect(
        [("reserved_scores.2.subject", "TOAN"), ("reserved_scores.2.score", "11")]
    )
    built = webform.to_body(values)
    assert built.reserved_rows == (2,)
    assert webform.input_for("reserved_scores.0.score", (), built.reserved_rows) == (
        "reserved_scores.2.score"
    )
