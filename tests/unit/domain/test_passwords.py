"""The password policy (NIST SP 800-63B) as pure code: NFKC, length, blocklist, login, repeats."""

from __future__ import annotations

import tomllib
import unicodedata
from pathlib import Path

import pytest

from engine.domain.passwords import check_password_policy, common_passwords, normalise_password
from engine.errors import WeakPassword

NATIONAL_ID = "001208001234"
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "０１２３４５６７８９ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ"
    "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ",
)


def reasons(new: str, current: str | None = None, **kw: object) -> list[str]:
    try:
        check_password_policy(new, current, login=NATIONAL_ID, **kw)  # type: ignore[arg-type]
    except WeakPassword as exc:
        assert {e.field for e in exc.errors} == {"new_password"}
        assert exc.detail == exc.errors[0].message and exc.detail_en == exc.errors[0].message_en
        return [e.code for e in exc.errors]
    return []


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("password1", "too_common"),
        ("Password1", "too_common"),  # case does not make it another password
        ("aaaaaaa1", "too_common"),
        ("iloveyou2026!", "too_common"),  # a listed password with digits and symbols around it
        ("Matkhau@2026", "too_common"),
        ("anhyeuem123", "too_common"),
        ("thisinh2026!", "too_common"),  # a word of this service
        ("password1".translate(FULL_WIDTH), "too_common"),  # ｐａｓｓｗｏｒｄ１: NFKC
        ("password" + "1".translate(ARABIC_INDIC), "too_common"),  # password١
        ("qqqqrrrr55", "repetitive"),
        ("1234567abcdefg", "repetitive"),
        ("zzzzzzzzzzzz", "repetitive"),
        ("xyzxyzxyz1", "repetitive"),
        ("ab12ab12ab12", "repetitive"),
        (NATIONAL_ID + "a", "contains_login"),
        ("Minh-" + NATIONAL_ID, "contains_login"),
        (NATIONAL_ID[::-1] + "x", "contains_login"),
        (NATIONAL_ID.translate(FULL_WIDTH) + "a", "contains_login"),
        (NATIONAL_ID.translate(ARABIC_INDIC) + "a", "contains_login"),
        ("0012-0800-1234-Lan", "contains_login"),  # separators do not hide it
        ("short", "too_short"),
        ("x7#Kq" * 26, "too_long"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, code: str) -> None:
    assert code in reasons(password)


@pytest.mark.parametrize(
    "password",
    [
        "Moi-mat-khau-2026",
        "Hoa sen trên hồ",  # no digit needed: no composition rules
        "correct horse battery staple",
        "Trâu vàng gặm cỏ ٣٧",  # Arabic-Indic digits are allowed where nothing else is wrong
        "kq7#Vt2m",
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    assert reasons(password) == []


def test_every_reason_is_given_at_once() -> None:
    assert reasons("password", current="password") == ["same_as_current", "too_common"]
    twice = NATIONAL_ID + "ab"
    assert reasons(twice, current=twice) == ["same_as_current", "contains_login"]
    assert reasons("xyzxyz") == ["too_short", "repetitive"]


def test_the_current_password_compares_in_nfkc() -> None:
    composed = "Hoa sen trên hồ 2026"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and normalise_password(decomposed) == composed
    assert reasons(composed, current=decomposed) == ["same_as_current"]


def test_the_length_counts_characters_after_nfkc_and_the_minimum_is_configurable() -> None:
    assert reasons("Gặm-cỏ-8") == []  # 8 characters, though 10 code points when decomposed
    assert reasons(unicodedata.normalize("NFD", "Gặm-cỏ-8")) == []
    assert reasons("kq7#Vt2m", min_length=12) == ["too_short"]
    try:
        check_password_policy("kq7#Vt2m", min_length=12)
    except WeakPassword as exc:
        assert "12" in exc.detail and "12" in exc.detail_en
    assert reasons("kq7#Vt2mPx9!", min_length=12) == []


def test_a_short_username_does_not_forbid_every_password_containing_it() -> None:
    check_password_policy("Hoa-sen-an-2026", login="an")
    with pytest.raises(WeakPassword):
        check_password_policy("Desk.One-2026", login="desk.one")


def test_the_blocklist_ships_inside_the_package() -> None:
    words = common_passwords()
    assert len(words) == 30_000 and {"password", "anhyeuem", "matkhau"} <= words
    assert not any(w.startswith("#") for w in words)
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    assert "data/*.txt" in pyproject["tool"]["setuptools"]["package-data"]["engine.domain"]
