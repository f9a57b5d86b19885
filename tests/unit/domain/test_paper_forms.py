"""Keyed paper forms (engine.domain.paper_forms): columns, rows as bodies, keys, tables."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import Workbook

from engine.domain import paper_forms
from engine.domain.paper_forms import TableError
from engine.domain.registration import FIELDS, SUBFIELDS


def test_the_columns_are_every_leaf_of_the_validators_fields() -> None:
    columns = paper_forms.COLUMNS
    for field in FIELDS:
        if field in SUBFIELDS:
            assert any(c.startswith(f"{field}.") for c in columns)
        else:
            assert field in columns
    assert "schools.2.school_code" in columns and "residence.address" in columns
    assert len(columns) == len(set(columns))


def test_a_row_becomes_the_body_the_validator_takes() -> None:
    cells = {c: "" for c in paper_forms.COLUMNS}
    cells.update(
        {
            "full_name": " Nguyễn Văn An ",
            "electives": "LI; HOA",
            "residence.address": "Số 1 Lê Lợi",
            "residence.kv1_over_18_months": "có",
            "schools.0.grade": "10",
            "schools.0.school_code": "001",
            "schools.2.grade": "12",
        }
    )
    assert paper_forms.row_body(cells) == {
        "full_name": "Nguyễn Văn An",
        "electives": ["LI", "HOA"],
        "residence": {"address": "Số 1 Lê Lợi", "kv1_over_18_months": True},
        "schools": [{"grade": 10, "school_code": "001"}, {"grade": 12}],
    }
    # A value of the wrong kind stays as typed, for the validator to name the field.
    assert paper_forms.row_body({"schools.0.grade": "mười"}) == {"schools": [{"grade": "mười"}]}


def test_the_key_depends_on_unit_candidate_and_form_only() -> None:
    form = {"full_name": "A", "electives": ["LI", "HOA"]}
    key = paper_forms.paper_key(("01", "001"), "001206000001", form)
    assert key == paper_forms.paper_key(("01", "001"), "001206000001", dict(reversed(form.items())))
    assert key.startswith("paper-") and len(key) <= 64
    assert key != paper_forms.paper_key(("01", "002"), "001206000001", form)
    assert key != paper_forms.paper_key(("01", "001"), "001206000002", form)
    assert key != paper_forms.paper_key(("01", "001"), "001206000001", {**form, "full_name": "B"})


def test_csv_and_xlsx_tables_keep_their_line_numbers() -> None:
    data = b'\xef\xbb\xbffull_name,electives\n"NGUYEN\nAN",LI;HOA\n\n,\nB,SU;DIA\n'
    header, rows = paper_forms.read_table(data, "csv", 10)
    assert header == ("full_name", "electives")
    assert [(r.line, r.cells["full_name"]) for r in rows] == [(3, "NGUYEN\nAN"), (6, "B")]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["full_name", "date_of_birth", "schools.0.grade"])
    sheet.append(["C", date(2008, 1, 2), 10])
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()
    assert paper_forms.kind_of("x.xlsx", data) == "xlsx"
    _, rows = paper_forms.read_table(data, "xlsx", 10)
    assert rows[0].line == 2
    assert rows[0].cells == {
        "full_name": "C",
        "date_of_birth": "2008-01-02",
        "schools.0.grade": "10",
    }


def test_unreadable_and_oversized_tables_are_refused() -> None:
    with pytest.raises(TableError):
        paper_forms.read_table(b"\xff\xfe\x00bad", "csv", 10)
    with pytest.raises(TableError):
        paper_forms.kind_of("x.xlsx", b"not a zip")
    with pytest.raises(TableError):
        paper_forms.read_table(b"PK\x03\x04garbage", "xlsx", 10)
    with pytest.raises(TableError, match="more than 2 rows"):
        paper_forms.read_table(b"full_name\na\nb\nc\n", "csv", 2)
    assert paper_forms.unknown_columns(["full_name", "shoe_size"]) == ["shoe_size"]


def test_a_form_written_as_a_row_reads_back_as_the_same_body() -> None:
    form = {
        "full_name": "NGUYỄN VĂN AN",
        "purposes": ["graduation", "admission"],
        "residence": {"address": "Số 1", "kv1_over_18_months": True},
        "schools": [{"grade": 10, "province_code": "01", "school_code": "015"}],
        "foreign_national": False,
    }
    row = paper_forms.form_row(form)
    assert len(row) == len(paper_forms.COLUMNS)
    cells = dict(zip(paper_forms.COLUMNS, row, strict=True))
    assert cells["purposes"] == "graduation;admission"
    assert cells["residence.kv1_over_18_months"] == "true"
    assert paper_forms.row_body(cells) == form
