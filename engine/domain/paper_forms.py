"""Paper forms a unit keys in: the keying file's columns, a row as a form body, its request key.

Owns the shape of a keyed file (issue 13 item 6): one column per leaf of the form, derived from the
validator's own field lists (`registration.FIELDS`, `SUBFIELDS`, `OBJECT_LISTS`), so a field the
form gains is a column here without a change; reading a CSV or XLSX file into numbered rows;
turning a row into the body `validate_registration` takes; and the Idempotency-Key of a paper form,
derived from the unit, the candidate and a hash of the canonical form, so keying the same form
again, or uploading the same file again, replays instead of creating a version. Pure: bytes in,
values out; no network, no database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

import orjson
from openpyxl import load_workbook

from engine.domain.registration import FIELDS, OBJECT_LISTS, SUBFIELDS

# Lists of plain values are one cell, items separated by ";" ("LI;HOA").
LIST_FIELDS: Final = frozenset({"purposes", "electives"})
LIST_SEPARATOR: Final = ";"
# Leaves the validator wants as JSON numbers or booleans, not strings; every other cell is text.
INTEGER_LEAVES: Final = frozenset(
    {
        "schools.grade",
        "diploma_year",
        "reserved_scores.exam_year",
        "exemptions.literature_certificate_level",
    }
)
BOOLEAN_LEAVES: Final = frozenset(
    {
        "residence.kv1_over_18_months",
        "residence.difficult_commune_over_18_months",
        "foreign_national",
    }
)
_TRUE: Final = frozenset({"true", "1", "x", "yes", "có", "co"})
_FALSE: Final = frozenset({"false", "0", "no", "không", "khong"})
KEY_PREFIX: Final = "paper-"

FileKind = Literal["csv", "xlsx"]


class TableError(ValueError):
    """The file cannot be read as a table at all (not CSV/XLSX, bad encoding, no header)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of a keyed file: its line number in the file and its cells by column."""

    line: int
    cells: dict[str, str]


def columns() -> tuple[str, ...]:
    """The keyed file's columns, in form order: `full_name`, `residence.address`,
    `schools.0.grade`, …"""
    names: list[str] = []
    for field in FIELDS:
        subfields = SUBFIELDS.get(field)
        if subfields is None:
            names.append(field)
        elif field in OBJECT_LISTS:
            names.extend(
                f"{field}.{i}.{sub}" for i in range(OBJECT_LISTS[field]) for sub in subfields
            )
        else:
            names.extend(f"{field}.{sub}" for sub in subfields)
    return tuple(names)


COLUMNS: Final = columns()


def _leaf(path: str) -> str:
    """`schools.2.grade` → `schools.grade`: the leaf's kind does not depend on the row."""
    return ".".join(part for part in path.split(".") if not part.isdigit())


_LEAVES: Final = {column: _leaf(column) for column in COLUMNS}


def _cell(path: str, text: str) -> Any:
    """A cell as the JSON value the form has there; a value of the wrong kind is passed on as
    typed, so the validator names the field."""
    text = text.strip()
    if text == "":
        return None
    leaf = _LEAVES.get(path) or _leaf(path)
    if path in LIST_FIELDS:
        return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
    if leaf in INTEGER_LEAVES and text.isascii() and text.isdigit():
        return int(text)
    if leaf in BOOLEAN_LEAVES and text.casefold() in _TRUE | _FALSE:
        return text.casefold() in _TRUE
    return text


def row_body(cells: Mapping[str, str]) -> dict[str, Any]:
    """A keyed row as the body of `PUT /api/v1/me/registration`: blank cells are absent, an
    object with no filled cell is absent, rows of a list of objects keep their order."""
    body: dict[str, Any] = {}
    lists: dict[str, dict[int, dict[str, Any]]] = {}
    for path, text in cells.items():
        value = _cell(path, text)
        if value is None:
            continue
        parts = path.split(".")
        if len(parts) == 1:
            body[path] = value
        elif len(parts) == 2:
            body.setdefault(parts[0], {})[parts[1]] = value
        else:
            lists.setdefault(parts[0], {}).setdefault(int(parts[1]), {})[parts[2]] = value
    for field, rows in lists.items():
        body[field] = [rows[i] for i in sorted(rows)]
    return body


def form_row(form: Mapping[str, Any]) -> list[str]:
    """A form as a row of the keyed file, one cell per column of `COLUMNS` (what `row_body`
    reads back): lists joined with `LIST_SEPARATOR`, flags as true/false, absent cells blank."""
    row = []
    for column in COLUMNS:
        value: Any = form
        for part in column.split("."):
            if isinstance(value, list):
                value = value[int(part)] if int(part) < len(value) else None
            elif isinstance(value, Mapping):
                value = value.get(part)
            else:
                value = None
        if isinstance(value, list):
            row.append(LIST_SEPARATOR.join(str(v) for v in value))
        else:
            row.append(_text(value))
    return row


def paper_key(school: tuple[str, str], national_id: str, form: Mapping[str, Any]) -> str:
    """The Idempotency-Key of one paper form: the same unit, candidate and canonical form give the
    same key (a replay, never a second version); any change to the form gives another (a new
    version). 46 characters of `[A-Za-z0-9_-]`, as every Idempotency-Key."""
    canonical = orjson.dumps(dict(form), option=orjson.OPT_SORT_KEYS)
    seed = f"{school[0]}-{school[1]}|{national_id}|".encode() + canonical
    return KEY_PREFIX + hashlib.sha256(seed).hexdigest()[:40]


def kind_of(file_name: str, data: bytes) -> FileKind:
    """CSV or XLSX, by content (an XLSX file is a ZIP archive) rather than by name alone."""
    if data[:4] == b"PK\x03\x04":
        return "xlsx"
    if file_name.lower().endswith((".xlsx", ".xlsm")):
        raise TableError("not an XLSX file")
    return "csv"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError("the CSV file is not UTF-8") from exc
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") and "\t" not in sample else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise TableError(f"line {reader.line_num}: {exc}") from exc


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise TableError("not a readable XLSX file") from exc
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_text(v) for v in values]
    finally:
        book.close()


def read_table(data: bytes, kind: FileKind, max_rows: int) -> tuple[tuple[str, ...], list[Row]]:
    """The header and the non-empty data rows of a keyed file, each with its line number.

    Raises:
        TableError: unreadable, no header, or more than `max_rows` data rows.
    """
    numbered = _xlsx_rows(data) if kind == "xlsx" else _csv_rows(data)
    header: tuple[str, ...] | None = None
    rows: list[Row] = []
    for line, cells in numbered:
        if header is None:
            if any(c.strip() for c in cells):
                header = tuple(c.strip() for c in cells)
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= max_rows:
            raise TableError(f"more than {max_rows} rows")
        rows.append(Row(line, dict(zip(header, (*cells, *[""] * len(header)), strict=False))))
    if header is None:
        raise TableError("no header row")
    return header, rows


def unknown_columns(header: Sequence[str]) -> list[str]:
    known = set(COLUMNS)
    return [name for name in header if name and name not in known]


def template_csv() -> bytes:
    """The keying template: the header row of every column, UTF-8 with a BOM (Excel opens it)."""
    out = io.StringIO()
    csv.writer(out).writerow(COLUMNS)
    return ("\ufeff" + out.getvalue()).encode()
