"""Unit tests of `engine.domain.entries`: stream entry → history row, and what makes an entry
poison."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from engine.domain.entries import STAGING_COLUMNS, PoisonEntry, VersionRow, to_row

FORM = {
    "full_name": "Nguyễn Thị Minh Anh",
    "national_id": "001308012345",
    "electives": ["LI", "HOA"],
}


def entry(**changes: str | None) -> dict[str, str]:
    """The fields the enqueue script writes (engine/lua/examreg.lua), with `changes` applied;
    a change to None removes the field."""
    fields = {
        "cid": "123456",
        "v": "7",
        "rid": "r_01HZX3",
        "key": "0b8f6a1e-idem",
        "hash": "c0ffee" * 10 + "abcd",
        "phase": "official",
        "at": "2026-04-21T03:04:05.123456Z",  # engine.adapters.streams writes UTC with a Z suffix
        "form": orjson.dumps(FORM).decode(),
    }
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    return fields


def test_a_well_formed_entry_becomes_a_row() -> None:
    row = to_row("1745204645123-0", 3, entry())
    assert row == VersionRow(
        candidate_id=123456,
        version=7,
        receipt_id="r_01HZX3",
        idempotency_key="0b8f6a1e-idem",
        request_hash="c0ffee" * 10 + "abcd",
        phase="official",
        form=orjson.dumps(FORM).decode(),
        full_name="Nguyễn Thị Minh Anh",
        shard=3,
        stream_id="1745204645123-0",
        accepted_at=datetime(2026, 4, 21, 3, 4, 5, 123456, tzinfo=UTC),
    )


def test_the_form_round_trips_unchanged() -> None:
    fields = entry()
    row = to_row("1-0", 0, fields)
    assert row.form == fields["form"], "the text is stored as enqueued, not re-encoded"
    assert orjson.loads(row.form) == FORM


def test_a_trial_entry_keeps_its_phase() -> None:
    assert to_row("1-0", 0, entry(phase="trial")).phase == "trial"


def test_accepted_at_is_an_aware_utc_instant() -> None:
    accepted_at = to_row("1-0", 0, entry()).accepted_at
    assert accepted_at.utcoffset() is not None
    assert accepted_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["cid", "v", "rid", "key", "hash", "phase", "at", "form"])
def test_a_missing_field_is_poison(name: str) -> None:
    with pytest.raises(PoisonEntry, match=f"missing field '{name}'"):
        to_row("1-0", 0, entry(**{name: None}))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"cid": "abc"}, id="non-numeric candidate id"),
        pytest.param({"v": "seven"}, id="non-numeric version"),
        pytest.param({"v": "7.0"}, id="fractional version"),
        pytest.param({"v": ""}, id="empty version"),
        pytest.param({"at": "yesterday"}, id="timestamp that is not ISO 8601"),
        pytest.param({"at": "2026-02-30T00:00:00Z"}, id="impossible date"),
        # Not what the enqueue script writes, and not harmless: the writer subtracts accepted_at
        # from an aware now() after COMMIT (engine/writer.py, accept-to-persist latency), which
        # raises TypeError for a naive value, and a naive instant's meaning would depend on the
        # writer host's time zone.
        pytest.param({"at": "2026-04-21T03:04:05.123456"}, id="timestamp without an offset"),
        pytest.param({"form": "{not json"}, id="form not JSON"),
        pytest.param({"form": ""}, id="empty form"),
        pytest.param({"form": '["Nguyễn Thị Minh Anh"]'}, id="form not an object"),
        pytest.param({"form": '{"national_id": "001308012345"}'}, id="form without full_name"),
        pytest.param({"form": '{"full_name": null}'}, id="null full_name"),
        pytest.param({"form": '{"full_name": 42}'}, id="non-string full_name"),
        pytest.param({"phase": "closed"}, id="unknown phase"),
        pytest.param({"phase": "Official"}, id="phase in the wrong case"),
    ],
)
def test_a_malformed_entry_is_poison(changes: dict[str, str]) -> None:
    with pytest.raises(PoisonEntry):
        to_row("1-0", 0, entry(**changes))


def test_poison_is_a_value_error_with_a_message() -> None:
    with pytest.raises(PoisonEntry, match="unknown phase 'closed'") as caught:
        to_row("1-0", 0, entry(phase="closed"))
    assert isinstance(caught.value, ValueError)


def test_as_record_is_in_staging_column_order() -> None:
    row = to_row("1745204645123-0", 3, entry())
    record = row.as_record()
    assert len(record) == len(STAGING_COLUMNS)
    # Every value in the fixture is distinct, so a swapped pair of columns cannot pass.
    assert len({repr(value) for value in record}) == len(record)
    assert record == tuple(getattr(row, column) for column in STAGING_COLUMNS)


def test_staging_columns_are_exactly_the_row_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(VersionRow)) == STAGING_COLUMNS


def test_staging_columns_exist_in_the_staging_table() -> None:
    """COPY names these columns; engine/sql/queries.sql creates the table they go into."""
    queries = (
        Path(__file__).resolve().parents[3] / "engine" / "adapters" / "sql" / "queries.sql"
    ).read_text()
    block = re.search(
        r"CREATE TEMP TABLE IF NOT EXISTS staging_versions \((.*?)\)\s*ON", queries, re.S
    )
    assert block is not None
    declared = tuple(
        line.split()[0]
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("--")
    )
    assert declared == STAGING_COLUMNS
