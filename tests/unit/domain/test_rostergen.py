"""The synthetic roster generator: determinism, CCCD rules, national shares and valid forms."""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from datetime import date
from typing import Any

import pytest

from engine.domain import reference
from engine.domain.registration import FIELDS
from engine.domain.rostergen import RosterEntry, _NationalIds, generate_roster, sample_form

ROSTER_SIZE = 200_000
EXAM_YEAR = 2026
NATIONAL_TOTAL_2024 = 1_071_393  # domain.md §8.1
MOBILE = re.compile(r"^0(3[2-9]|5[25689]|7[06-9]|8[1-9]|9[0-46-9])\d{7}$")
NAME_WORD = re.compile(r"^[^\W\d_]+$")
EMAIL = re.compile(r"^[a-z0-9.]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
ELECTIVES = {code for code, _ in reference.ELECTIVES}
FORM_KEYS = set(FIELDS)  # every field of the canonical form, the Phiếu's new ones too
SCHOOL_KEYS = {(s.province_code, s.school_code) for s in reference.schools()}
CERTIFICATE_LANGUAGE = {code: language for code, language, _ in reference.CERTIFICATES}


@pytest.fixture(scope="module")
def roster() -> list[RosterEntry]:
    return list(generate_roster(ROSTER_SIZE, seed=7, exam_year=EXAM_YEAR))


@pytest.fixture(scope="module")
def forms(roster: list[RosterEntry]) -> list[tuple[RosterEntry, dict[str, Any]]]:
    rng = random.Random(3)
    return [(entry, sample_form(entry, rng)) for entry in roster[:20_000]]


def share(count: int, total: int) -> float:
    return count / total


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_roster() -> None:
    assert list(generate_roster(2_000, seed=11)) == list(generate_roster(2_000, seed=11))


def test_other_seed_gives_a_different_roster() -> None:
    first = list(generate_roster(2_000, seed=11))
    second = list(generate_roster(2_000, seed=12))
    same_position = sum(a == b for a, b in zip(first, second, strict=True))
    shared_ids = {e.national_id for e in first} & {e.national_id for e in second}
    assert same_position == 0
    assert len(shared_ids) < 20


def test_a_longer_run_starts_with_the_entries_of_a_shorter_one() -> None:
    assert list(generate_roster(5_000, seed=5))[:1_000] == list(generate_roster(1_000, seed=5))


def test_sample_form_is_deterministic_for_an_equally_seeded_rng() -> None:
    entries = list(generate_roster(300, seed=9))
    first = [sample_form(e, random.Random(4)) for e in entries]
    again = [sample_form(e, random.Random(4)) for e in entries]
    other = [sample_form(e, random.Random(5)) for e in entries]
    assert first == again
    assert first != other


# --- arguments ---------------------------------------------------------------------------------


def test_zero_count_yields_nothing() -> None:
    assert list(generate_roster(0)) == []


@pytest.mark.parametrize(("count", "exam_year"), [(-1, 2026), (10, 1900), (10, 2500)])
def test_bad_arguments_are_refused_at_the_call_not_at_iteration(count: int, exam_year: int) -> None:
    with pytest.raises(ValueError):
        generate_roster(count, exam_year=exam_year)


def test_exam_year_moves_the_grade_12_cohort() -> None:
    years = Counter(e.date_of_birth.year for e in generate_roster(2_000, exam_year=2030))
    assert years.most_common(1)[0][0] == 2012
    assert min(years) >= 2030 - 40
    assert max(years) == 2012


# --- national IDs (domain.md §7.5, §4.9 V1–V2) -------------------------------------------------


def test_national_ids_are_unique_across_200k_entries(roster: list[RosterEntry]) -> None:
    ids = Counter(e.national_id for e in roster)
    assert [i for i, n in ids.items() if n > 1] == []


def test_one_id_head_yields_a_million_distinct_ids_then_refuses() -> None:
    issuer = _NationalIds(random.Random(1))
    tails = {issuer.issue("001208")[6:] for _ in range(1_000_000)}
    assert len(tails) == 1_000_000
    with pytest.raises(ValueError, match="001208"):
        issuer.issue("001208")


def test_every_national_id_encodes_sex_century_and_birth_year(roster: list[RosterEntry]) -> None:
    wrong = []
    for e in roster:
        digit = int(e.national_id[3])
        year = e.date_of_birth.year
        if not (
            re.fullmatch(r"\d{12}", e.national_id)
            and (digit % 2 == 0) == (e.sex == "male")  # even is MALE (V1)
            and digit // 2 == year // 100 - 19  # 0/1 for 1900s, 2/3 for 2000s
            and e.national_id[4:6] == f"{year % 100:02d}"  # V2
        ):
            wrong.append(e)
    assert wrong == []
    # The free candidates' tail reaches the 1900s, so both centuries were exercised.
    assert {e.national_id[3] for e in roster} == {"0", "1", "2", "3"}


def test_id_prefix_is_the_school_provinces_birth_code_for_about_95_percent(
    roster: list[RosterEntry],
) -> None:
    own = {p.code: p.cccd_code for p in reference.PROVINCES}
    assert {e.national_id[:3] for e in roster} <= set(reference.CCCD_PROVINCE_CODES)
    at_home = sum(e.national_id[:3] == own[e.province_code] for e in roster)
    assert share(at_home, len(roster)) == pytest.approx(0.95, abs=0.005)


# --- national shares (domain.md §8.1, §3) ------------------------------------------------------


def test_province_shares_follow_2024_registrations(roster: list[RosterEntry]) -> None:
    counts = Counter(e.province_code for e in roster)
    known = reference.REGISTRATIONS_2024
    even = (NATIONAL_TOTAL_2024 - sum(known.values())) / 59  # 63 provinces minus the 4 known
    for code, expected in [*known.items(), ("29", even), ("62", even)]:
        observed = share(counts[code], len(roster))
        assert observed == pytest.approx(expected / NATIONAL_TOTAL_2024, rel=0.07), code
    assert share(counts["01"], len(roster)) == pytest.approx(109_078 / 1_071_393, abs=0.003)
    assert "65" not in counts
    assert len(counts) == 63


def test_about_four_percent_are_free_candidates_of_types_b_c_d(roster: list[RosterEntry]) -> None:
    types = Counter(e.candidate_type for e in roster)
    free = types["b"] + types["c"] + types["d"]
    assert share(free, len(roster)) == pytest.approx(0.04, abs=0.003)
    assert min(types["b"], types["c"], types["d"]) > 0.1 * free


def test_birth_years_fit_the_candidate_type(roster: list[RosterEntry]) -> None:
    grade12 = Counter(e.date_of_birth.year for e in roster if e.candidate_type == "a")
    free = Counter(e.date_of_birth.year for e in roster if e.candidate_type != "a")
    assert set(grade12) == {2008, 2007}
    assert 0.01 < share(grade12[2007], grade12.total()) < 0.05
    assert min(free) == EXAM_YEAR - 40
    assert max(free) == EXAM_YEAR - 19
    assert free.most_common(1)[0][0] == EXAM_YEAR - 19


def test_birthdays_spread_over_the_whole_year(roster: list[RosterEntry]) -> None:
    months = Counter(e.date_of_birth.month for e in roster)
    assert len(months) == 12
    assert min(months.values()) > 0.06 * len(roster)


def test_sexes_are_balanced(roster: list[RosterEntry]) -> None:
    males = sum(e.sex == "male" for e in roster)
    assert share(males, len(roster)) == pytest.approx(0.5, abs=0.01)


# --- names, schools, phones --------------------------------------------------------------------


def test_names_are_upper_case_nfc_vietnamese(roster: list[RosterEntry]) -> None:
    bad = [
        e.full_name
        for e in roster
        if e.full_name != unicodedata.normalize("NFC", e.full_name)
        or e.full_name != e.full_name.upper()
        or not 3 <= len(e.full_name.split(" ")) <= 5
        or not all(NAME_WORD.match(word) for word in e.full_name.split(" "))
    ]
    assert bad == []
    with_diacritics = sum(not e.full_name.isascii() for e in roster)
    assert share(with_diacritics, len(roster)) > 0.8
    nguyen = sum(e.full_name.startswith("NGUYỄN ") for e in roster)
    assert share(nguyen, len(roster)) == pytest.approx(0.38, abs=0.02)


def test_middle_names_follow_the_sex(roster: list[RosterEntry]) -> None:
    middles = [(e.sex, e.full_name.split(" ")[1:-1]) for e in roster]
    assert not any(sex == "male" and "THỊ" in words for sex, words in middles)
    assert not any(sex == "female" and "VĂN" in words for sex, words in middles)
    females = [words for sex, words in middles if sex == "female"]
    assert 0.1 < share(sum("THỊ" in w for w in females), len(females)) < 0.6
    assert any(len(w) == 2 for w in females)  # "NGUYỄN THỊ THU HÀ"


def test_schools_exist_in_reference_and_grade_12_students_avoid_special_codes(
    roster: list[RosterEntry],
) -> None:
    assert all((e.province_code, e.school_code) in SCHOOL_KEYS for e in roster)
    grade12 = {e.school_code for e in roster if e.candidate_type == "a"}
    assert grade12.isdisjoint({"800", "900"})
    assert len(grade12) == reference.SCHOOLS_PER_PROVINCE


def test_phones_are_vietnamese_mobile_numbers(roster: list[RosterEntry]) -> None:
    assert [e.phone for e in roster if not MOBILE.match(e.phone)] == []
    assert len({e.phone[:3] for e in roster}) > 30


# --- registration forms ------------------------------------------------------------------------


def test_sample_form_has_exactly_the_contract_keys(forms: list[tuple[RosterEntry, Any]]) -> None:
    assert all(set(form) == FORM_KEYS for _, form in forms)
    residence_keys = {
        "address", "province_code", "commune_code", "kv1_over_18_months", "district_code",
        "difficult_commune_over_18_months",
    }  # fmt: skip
    assert all(set(form["residence"]) == residence_keys for _, form in forms)


def test_sample_form_copies_identity_from_the_roster_entry(
    forms: list[tuple[RosterEntry, dict[str, Any]]],
) -> None:
    for entry, form in forms:
        assert form["full_name"] == entry.full_name
        assert date.fromisoformat(form["date_of_birth"]) == entry.date_of_birth
        assert (form["sex"], form["national_id"]) == (entry.sex, entry.national_id)
        assert (form["phone"], form["candidate_type"]) == (entry.phone, entry.candidate_type)
        assert form["exam_site_province"] == entry.province_code
        assert form["residence"]["province_code"] == entry.province_code


def test_sample_form_electives_obey_rule_v5(forms: list[tuple[RosterEntry, Any]]) -> None:
    for _, form in forms:
        first, second = form["electives"]
        assert first != second
        assert {first, second} <= ELECTIVES
        assert {first, second} != {"CNCN", "CNNN"}
        assert (form["foreign_language"] is not None) == ("NN" in form["electives"])
    languages = Counter(f["foreign_language"] for _, f in forms if f["foreign_language"])
    assert set(languages) <= {"N1", "N2", "N3", "N4", "N5", "N6", "N7"}
    assert share(languages["N1"], languages.total()) > 0.9
    pairs = Counter(frozenset(f["electives"]) for _, f in forms)
    assert len(pairs) > 25


def test_sample_form_exemptions_match_the_language(forms: list[tuple[RosterEntry, Any]]) -> None:
    with_nn = [form for _, form in forms if form["foreign_language"] is not None]
    exempt = [form for form in with_nn if form["exemptions"] is not None]
    assert all(form["exemptions"] is None for _, form in forms if form["foreign_language"] is None)
    for form in exempt:
        certificate = form["exemptions"]["foreign_language_certificate"]
        claimed = {k: v for k, v in form["exemptions"].items() if v is not None}
        assert claimed == {
            "foreign_language_certificate": certificate,
            "foreign_language_basis": "CERTIFICATE",
        }
        assert CERTIFICATE_LANGUAGE[certificate] == form["foreign_language"] != "N7"
    assert 0.04 < share(len(exempt), len(with_nn)) < 0.08


def test_sample_form_schools_are_grades_10_to_12_in_reference(
    forms: list[tuple[RosterEntry, dict[str, Any]]],
) -> None:
    for entry, form in forms:
        rows = form["schools"]
        assert [row["grade"] for row in rows] == [10, 11, 12]
        assert all((row["province_code"], row["school_code"]) in SCHOOL_KEYS for row in rows)
        assert rows[2]["school_code"] == entry.school_code
    same = sum(len({row["school_code"] for row in form["schools"]}) == 1 for _, form in forms)
    assert 0.9 < share(same, len(forms)) < 1.0


def test_sample_form_reference_fields_and_shares(forms: list[tuple[RosterEntry, Any]]) -> None:
    ethnicities = {name for _, name in reference.ETHNICITIES}
    provinces = {p.name for p in reference.PROVINCES}
    groups = {code for code, _ in reference.PRIORITY_GROUPS}
    for _, form in forms:
        assert form["ethnicity"] in ethnicities
        assert form["birthplace"] in provinces
        assert form["purposes"] and set(form["purposes"]) <= {"graduation", "admission"}
        assert form["priority_group"] is None or form["priority_group"] in groups
        assert form["email"] is None or EMAIL.match(form["email"])
        assert re.fullmatch(r"\d+(/\d+)? [^,]+, (Phường|Xã) .+", form["residence"]["address"])
    n = len(forms)
    assert share(sum(f["ethnicity"] == "Kinh" for _, f in forms), n) > 0.8
    assert share(sum(len(f["purposes"]) == 2 for _, f in forms), n) > 0.8
    assert share(sum(f["priority_group"] is None for _, f in forms), n) > 0.85
    assert share(sum(f["email"] is None for _, f in forms), n) < 0.5


def test_sample_forms_pass_the_registration_validator(roster: list[RosterEntry]) -> None:
    from engine.domain.registration import CandidateContext, Catalog, validate_registration
    from engine.errors import InvalidRegistration

    catalog = Catalog.from_reference()
    today = date(EXAM_YEAR, 4, 21)
    rng = random.Random(2026)
    rejected = []
    for entry in roster[:2_000]:
        form = sample_form(entry, rng)
        context = CandidateContext(national_id=entry.national_id, today=today)
        try:
            validate_registration(form, context, catalog)
        except InvalidRegistration as error:
            rejected.append((form, [(e.field, e.code, e.message_en) for e in error.errors]))
    assert rejected[:3] == []
