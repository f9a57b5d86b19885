"""Unit tests of `engine.domain.reference`: the code lists of domain.md §7 and the migration
rendered from them."""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from engine.domain import reference
from engine.domain.reference import (
    CCCD_PROVINCE_CODES,
    CERTIFICATES,
    ETHNICITIES,
    LANGUAGES,
    PROVINCES,
    SCHOOLS_PER_PROVINCE,
    render_sql,
    schools,
)

MIGRATION = (
    Path(__file__).resolve().parents[3] / "engine" / "adapters" / "schema" / "0002_reference.sql"
)


def test_the_committed_migration_is_the_rendering() -> None:
    # Bytes, not read_text(): newline translation would hide a CRLF checkout.
    committed = MIGRATION.read_bytes().decode("utf-8")
    assert committed == render_sql(), (
        "engine/adapters/schema/0002_reference.sql is stale; regenerate with "
        "`python -m engine.domain.reference > engine/adapters/schema/0002_reference.sql`"
    )


def test_provinces_are_the_64_exam_codes() -> None:
    codes = [p.code for p in PROVINCES]
    assert len(codes) == len(set(codes)) == 64
    assert "20" not in codes, "code 20 (former Hà Tây) is unused"
    assert "65" in codes, "code 65: the Ministry of Defence's schools"
    assert set(codes) == {f"{n:02d}" for n in range(1, 66)} - {"20"}


def test_ethnicities_are_the_54_with_unique_codes_and_names() -> None:
    codes = [code for code, _ in ETHNICITIES]
    names = [name for _, name in ETHNICITIES]
    assert len(ETHNICITIES) == 54
    assert codes == [f"{n:02d}" for n in range(1, 55)]
    assert len(set(names)) == 54, [n for n, count in Counter(names).items() if count > 1]
    assert names[0] == "Kinh"


def test_every_province_but_65_has_its_own_birth_registration_code() -> None:
    cccd = {p.code: p.cccd_code for p in PROVINCES}
    assert cccd.pop("65") is None
    codes = list(cccd.values())
    assert all(c is not None and len(c) == 3 and c.isdigit() for c in codes), cccd
    assert len(set(codes)) == len(codes) == 63


def test_birth_registration_codes_match_the_province_by_name() -> None:
    """PROVINCES.cccd_code is matched by name to domain.md §7.5; a transposed code shows here."""
    aliases = {"HCM": "Hồ Chí Minh"}

    def key(name: str) -> str:
        name = name.removeprefix("TP ")
        name = aliases.get(name, name)
        return name.replace("–", "-").replace(" ", "").casefold()

    assert set(CCCD_PROVINCE_CODES) == {p.cccd_code for p in PROVINCES if p.cccd_code}
    mismatched = [
        (p.code, p.name, p.cccd_code, CCCD_PROVINCE_CODES[p.cccd_code])
        for p in PROVINCES
        if p.cccd_code and key(p.name) != key(CCCD_PROVINCE_CODES[p.cccd_code])
    ]
    assert not mismatched


def test_certificates_are_for_languages_n1_to_n6_only() -> None:
    languages = {code for code, _, _ in LANGUAGES}
    assert languages == {f"N{n}" for n in range(1, 8)}
    used = {language for _, language, _ in CERTIFICATES}
    assert used <= {f"N{n}" for n in range(1, 7)}
    assert "N7" not in used, "Korean has no exemption certificate (domain.md §7.9)"
    codes = [code for code, _, _ in CERTIFICATES]
    assert len(codes) == len(set(codes))


def test_schools_have_unique_keys_within_known_provinces() -> None:
    keys = [(s.province_code, s.school_code) for s in schools()]
    assert len(keys) == len(set(keys)), [k for k, count in Counter(keys).items() if count > 1]
    assert {province for province, _ in keys} <= {p.code for p in PROVINCES}
    assert all(len(code) == 3 and code.isdigit() for _, code in keys)
    assert {s.priority_area for s in schools()} <= {"KV1", "KV2", "KV2-NT", "KV3"}


@pytest.mark.parametrize("province", [p.code for p in PROVINCES if p.code != "65"])
def test_every_province_has_the_special_codes_800_and_900(province: str) -> None:
    codes = {s.school_code for s in schools() if s.province_code == province}
    assert {"800", "900"} <= codes
    assert len(codes) == SCHOOLS_PER_PROVINCE + 2


def test_schools_are_deterministic() -> None:
    assert schools() == schools()
    assert schools()[0].province_code == "01" and schools()[0].school_code == "001"


def test_every_name_is_nfc() -> None:
    """The validator compares NFC-normalized input with these names (engine/registration.py)."""
    texts = [s for table in _tables() for row in table for s in row if isinstance(s, str)]
    texts += [name for p in PROVINCES for name in (p.name, p.name_from_2025)]
    texts += [s.name for s in schools()]
    assert [t for t in texts if unicodedata.normalize("NFC", t) != t] == []


def _tables() -> list[tuple[tuple[str, ...], ...]]:
    return [
        reference.ETHNICITIES,
        reference.LANGUAGES,
        reference.CERTIFICATES,
        reference.PRIORITY_GROUPS,
        reference.CANDIDATE_TYPES,
        reference.COMPULSORY_SUBJECTS,
        reference.ELECTIVES,
    ]
