"""Labels and values of the version differences (engine.pages.form_labels), pure."""

from __future__ import annotations

from engine.domain.form_diff import Change
from engine.pages import form_labels


def test_a_field_path_is_labelled_by_the_forms_own_words_else_by_its_parts() -> None:
    assert form_labels.field_label("residence.address", "vi") == "Địa chỉ thường trú"
    assert form_labels.field_label("residence.address", "en") == "Address"
    assert form_labels.field_label("schools.2.school_code", "vi") == (
        "Nơi học THPT · dòng 3 · Mã trường"
    )
    # A field the form gains later is still shown, by its own path, until it gets a label.
    assert form_labels.field_label("grade12_class", "en") == "grade12_class"


def test_values_read_as_words() -> None:
    assert form_labels.value_text("residence.kv1_over_18_months", True, "vi") == "Có"
    assert form_labels.value_text("sex", "female", "en") == "Female"
    assert form_labels.value_text("electives", ["LI", "HOA"], "en") == "LI, HOA"
    assert form_labels.value_text("email", None, "vi") == "(trống)"
    rows = form_labels.rows([Change("phone", "0912345678", "0987654321")], "en")
    assert rows == [
        {
            "field": "phone",
            "label": "Mobile phone number",
            "before": "0912345678",
            "after": "0987654321",
        }
    ]
