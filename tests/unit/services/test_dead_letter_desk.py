"""Unit tests of `engine.services.dead_letter_desk`'s pure parts: what an operator may see."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from engine.adapters.dead_letters import DeadLetter
from engine.services.dead_letter_desk import (
    DeadLetterRefused,
    details,
    mask_text,
    masked_form,
    parse_ref,
    summary,
)

FORM = {
    "full_name": "NGUYỄN THỊ MINH ANH",
    "date_of_birth": "2008-03-15",
    "sex": "female",
    "national_id": "001308012345",
    "ethnicity": "Tày",
    "birthplace": "Nhật Bản",
    "residence": {"address": "Số 5 phố Tràng Tiền", "province_code": "01", "commune_code": None},
    "phone": "0912345678",
    "email": "a\u0000b@example.com",
    "electives": ["LI", "NN"],
    "exam_site_province": "01",
}
LETTER = DeadLetter(
    shard=3,
    entry_id="1712345678901-0",
    fields={
        "cid": "42",
        "v": "2",
        "rid": "ABCDEF0123456789ABCD",
        "key": "k1",
        "hash": "h",
        "phase": "official",
        "at": "2026-04-01T10:00:00+00:00",
        "form": orjson.dumps(FORM).decode(),
    },
    source_id="1712345600000-0",
    reason="22P05: UntranslatableCharacterError",
)
NOW = datetime(2026, 4, 1, 12, 30, tzinfo=UTC)
PERSONAL = ["NGUYỄN", "001308012345", "0912345678", "example.com", "Tràng Tiền", "Tày", "Nhật"]


def test_a_listed_dead_letter_says_where_how_old_whose_and_why_and_nothing_personal() -> None:
    line = summary(LETTER, NOW)
    assert line == {
        "id": "3:1712345678901-0",
        "shard": 3,
        "age_seconds": 9000.0,
        "candidate_id": 42,
        "version": 2,
        "receipt_id": "ABCDEF0123456789ABCD",
        "reason": "22P05: UntranslatableCharacterError",
    }


def test_show_masks_every_personal_field_but_keeps_what_explains_the_refusal() -> None:
    shown = details(LETTER, NOW)
    text = orjson.dumps(shown).decode()
    for personal in PERSONAL:
        assert personal not in text
    form = shown["form"]
    assert form["national_id"] == "001*******45"
    assert form["phone"] == "09******78"
    assert form["date_of_birth"] == "2008-**-**"
    assert form["email"] == "<masked: 15 characters; U+0000>"  # the NUL behind 22P05
    assert form["full_name"] == "<masked: 19 characters>"
    assert form["residence"]["address"] == "<masked: 19 characters>"
    assert form["residence"]["province_code"] == "01"
    assert form["electives"] == ["LI", "NN"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("SS" * 80, "<masked: 160 characters>"),
        ("a\u200fb\ud800", "<masked: 4 characters; U+200F, U+D800>"),
        ("", "<masked: 0 characters>"),
    ],
)
def test_masked_text_is_its_length_and_its_unusual_code_points(value: str, shown: str) -> None:
    assert mask_text(value) == shown


def test_an_unreadable_form_is_not_shown() -> None:
    assert masked_form(None) == "<not a form>"
    assert masked_form(["x"]) == "<not a form>"


@pytest.mark.parametrize("ref", ["3:1712345678901-0", " 0:1-0 "])
def test_a_reference_is_shard_colon_entry_id(ref: str) -> None:
    shard, entry_id = parse_ref(ref, shards=8)
    assert f"{shard}:{entry_id}" == ref.strip()


@pytest.mark.parametrize("ref", ["8:1-0", "1712345678901-0", "3:abc", "-1:1-0", "3:1-0;DEL"])
def test_anything_else_is_refused_with_what_to_type(ref: str) -> None:
    with pytest.raises(DeadLetterRefused, match="SHARD:ID"):
        parse_ref(ref, shards=8)


def test_the_new_free_text_of_the_phieu_is_masked_too() -> None:
    form = masked_form(
        {"contact_address": "Số 5 phố Huế", "class_12": "12A1", "curriculum": "GDPT2018"}
    )
    assert form == {
        "contact_address": "<masked: 12 characters>",
        "class_12": "<masked: 4 characters>",
        "curriculum": "GDPT2018",
    }
