"""Synthetic national roster: owns the fake candidates for `examreg seed`, the demo and load tests.

Everything this module makes is SYNTHETIC: invented people whose names, ID numbers, birthdays,
schools and phone numbers only have the *shape* of real ones (domain.md §4.2, §7.5), spread over
the provinces like the real 2024 registrations (§8.1). No entry describes a real person. The module
must stay pure (no IO, no `await`, no database or Redis imports) and deterministic: the same seed
always yields the same roster, and the first N entries of a longer run equal a run of N.
"""

from __future__ import annotations

import random
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Generic, Literal, TypeVar

from engine.domain import reference

Sex = Literal["male", "female"]
CandidateType = Literal["a", "b", "c", "d"]
T = TypeVar("T")

# domain.md §8.1 [C] S26: registrations in 2024; provinces without a published count share the rest.
NATIONAL_TOTAL_2024: Final = 1_071_393
_MILITARY_DOET: Final = "65"  # Cục Nhà trường – Bộ Quốc phòng: no schools, no synthetic candidates
_SPECIAL_SCHOOLS: Final = frozenset({"800", "900"})  # abroad / serving military (§4.4 6c)

# domain.md §8.1: free candidates were 4.38% in 2024 and 3.67% in 2025.
FREE_CANDIDATE_SHARE: Final = 0.04
_OLDER_GRADE12_SHARE: Final = 0.03  # grade-12 students a year older than their cohort
_BORN_ELSEWHERE_SHARE: Final = 0.05  # birth registered in another province than the school's
_ID_SPACE: Final = 1_000_000  # the 6 random digits RRRRRR of a CCCD (§7.5)


class _Picker(Generic[T]):
    """Weighted choice by one uniform draw (faster than `Random.choices` for a hot loop)."""

    __slots__ = ("_cumulative", "_values")

    def __init__(self, weighted: Iterable[tuple[T, float]]) -> None:
        pairs = [(value, weight) for value, weight in weighted if weight > 0]
        total = sum(weight for _, weight in pairs)
        cumulative: list[float] = []
        running = 0.0
        for _, weight in pairs:
            running += weight
            cumulative.append(running / total)
        cumulative[-1] = 1.0  # a draw in [0, 1) then always lands on an index
        self._values = tuple(value for value, _ in pairs)
        self._cumulative = tuple(cumulative)

    def __call__(self, u: float) -> T:
        return self._values[bisect_right(self._cumulative, u)]


def _upper(words: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    # The form stores names in NFC upper case with diacritics (domain.md §4.2 1a).
    return [(unicodedata.normalize("NFC", word.upper()), weight) for word, weight in words]


# Surname shares after the usual survey figures (Nguyễn ≈38%, Trần ≈12%, Lê ≈9.5% …).
_SURNAMES: Final = _Picker(
    _upper(
        [
            ("Nguyễn", 38.4), ("Trần", 12.1), ("Lê", 9.5), ("Phạm", 7.0), ("Hoàng", 3.2),
            ("Huỳnh", 1.9), ("Phan", 4.5), ("Vũ", 2.0), ("Võ", 1.9), ("Đặng", 2.1),
            ("Bùi", 2.0), ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1.0), ("Lý", 0.5),
            ("Đào", 0.5), ("Đoàn", 0.5), ("Trương", 0.5), ("Trịnh", 0.4), ("Đinh", 0.4),
            ("Lương", 0.4), ("Mai", 0.3), ("Lâm", 0.3), ("Phùng", 0.3), ("Tạ", 0.2), ("Hà", 0.3),
            ("Cao", 0.3), ("Lưu", 0.2), ("Chu", 0.2), ("Tô", 0.2), ("Thái", 0.2), ("Châu", 0.2),
            ("Quách", 0.1), ("Kiều", 0.1), ("Triệu", 0.1), ("Nông", 0.2), ("Lục", 0.1),
            ("Vương", 0.1), ("Tăng", 0.1), ("Lại", 0.1), ("Thân", 0.1), ("Văn", 0.1),
        ]
    )
)  # fmt: skip
_MIDDLE: Final = {
    "male": _Picker(
        _upper(
            [
                ("Văn", 14), ("Đức", 9), ("Minh", 12), ("Quang", 7), ("Hữu", 5), ("Thành", 5),
                ("Công", 4), ("Tuấn", 3), ("Hoàng", 4), ("Gia", 5), ("Bảo", 4), ("Đình", 4),
                ("Xuân", 3), ("Trung", 3), ("Duy", 3), ("Trọng", 3), ("Quốc", 4), ("Tiến", 2),
                ("Nhật", 3), ("Anh", 3), ("Hải", 2), ("Thế", 2), ("Việt", 2), ("Khánh", 2),
            ]
        )
    ),
    "female": _Picker(
        _upper(
            [
                ("Thị", 22), ("Ngọc", 10), ("Thu", 7), ("Thanh", 7), ("Phương", 6), ("Thùy", 5),
                ("Minh", 5), ("Khánh", 4), ("Bảo", 4), ("Hoài", 3), ("Mai", 3), ("Kim", 3),
                ("Hồng", 3), ("Mỹ", 3), ("Diệu", 2), ("Quỳnh", 3), ("Hà", 2), ("Gia", 3),
                ("Tường", 1), ("Bích", 2), ("Hải", 2), ("Lan", 2), ("Yến", 1), ("Như", 3),
            ]
        )
    ),
}  # fmt: skip
# A second middle name ("NGUYỄN THỊ THU HÀ"): the first is then the traditional Văn / Thị.
_SECOND_MIDDLE_SHARE: Final = {"male": 0.05, "female": 0.2}
_FIRST_OF_TWO: Final = {"male": "VĂN", "female": "THỊ"}
_GIVEN: Final = {
    "male": _Picker(
        _upper(
            [
                ("Anh", 6), ("Minh", 6), ("Huy", 5), ("Khoa", 4), ("Nam", 5), ("Đức", 4),
                ("Hoàng", 3), ("Long", 4), ("Phúc", 4), ("Bảo", 3), ("Khang", 4), ("Quân", 4),
                ("Tuấn", 4), ("Dũng", 3), ("Hùng", 3), ("Hải", 3), ("Sơn", 3), ("Thắng", 2),
                ("Trung", 3), ("Hiếu", 3), ("Kiên", 2), ("Tùng", 2), ("Phong", 3), ("Thịnh", 2),
                ("Vinh", 2), ("Lâm", 2), ("Duy", 3), ("Đạt", 4), ("Tài", 2), ("Toàn", 2),
                ("Nghĩa", 2), ("Tâm", 2), ("Thành", 3), ("Nhân", 2), ("Hưng", 3), ("Quang", 2),
                ("Việt", 2), ("Tiến", 2), ("Lộc", 2), ("An", 3), ("Khôi", 3), ("Đăng", 2),
                ("Thiện", 2), ("Trí", 2), ("Vũ", 2), ("Kiệt", 2), ("Khải", 1), ("Hậu", 1),
            ]
        )
    ),
    "female": _Picker(
        _upper(
            [
                ("Anh", 6), ("Linh", 6), ("Trang", 5), ("Hà", 4), ("Ngọc", 3), ("Hương", 4),
                ("Thảo", 5), ("Huyền", 4), ("Nhung", 2), ("Mai", 3), ("Lan", 3), ("Hằng", 3),
                ("Nhi", 5), ("Vy", 4), ("Yến", 3), ("Quỳnh", 3), ("Chi", 4), ("Giang", 3),
                ("Hoa", 2), ("Hạnh", 2), ("Hiền", 3), ("Ly", 3), ("My", 3), ("Ngân", 3),
                ("Nga", 2), ("Oanh", 1), ("Phương", 3), ("Tâm", 2), ("Thủy", 2), ("Trâm", 3),
                ("Uyên", 3), ("Vân", 2), ("Xuân", 1), ("Diệp", 1), ("Hồng", 2), ("Khánh", 2),
                ("Loan", 1), ("Thư", 4), ("Tuyết", 1), ("Châu", 2), ("Hân", 3), ("Ánh", 2),
                ("Dung", 2), ("Nguyệt", 1), ("Nhàn", 1), ("Thơ", 1), ("Trinh", 2), ("An", 3),
            ]
        )
    ),
}  # fmt: skip

# Current 10-digit mobile prefixes by operator, weighted by rough market share.
_PHONE_PREFIXES: Final = _Picker(
    [(p, 0.52 / 12) for p in ("032", "033", "034", "035", "036", "037", "038", "039",
                              "086", "096", "097", "098")]  # Viettel
    + [(p, 0.25 / 8) for p in ("081", "082", "083", "084", "085", "088", "091", "094")]
    + [(p, 0.18 / 8) for p in ("070", "076", "077", "078", "079", "089", "090", "093")]
    + [(p, 0.03 / 4) for p in ("052", "056", "058", "092")]  # Vietnamobile
    + [(p, 0.01 / 2) for p in ("059", "099")]  # Gmobile
    + [("087", 0.008), ("055", 0.002)]  # Itel, Reddi
)  # fmt: skip

_FREE_TYPES: Final = _Picker[CandidateType]([("b", 0.35), ("c", 0.5), ("d", 0.15)])


def _province_weights() -> dict[str, float]:
    """Real 2024 counts where published; the other provinces split the rest evenly (§8.1)."""
    known = reference.REGISTRATIONS_2024
    others = [
        p.code for p in reference.PROVINCES if p.code not in known and p.code != _MILITARY_DOET
    ]
    even_share = (NATIONAL_TOTAL_2024 - sum(known.values())) / len(others)
    return {
        p.code: float(known.get(p.code, even_share))
        for p in reference.PROVINCES
        if p.code != _MILITARY_DOET
    }


def _regular_schools() -> dict[str, tuple[str, ...]]:
    by_province: dict[str, list[str]] = {}
    for school in reference.schools():
        if school.school_code not in _SPECIAL_SCHOOLS:
            by_province.setdefault(school.province_code, []).append(school.school_code)
    return {province: tuple(codes) for province, codes in by_province.items()}


_PROVINCES: Final = _Picker(_province_weights().items())
_REGULAR_SCHOOLS: Final = _regular_schools()
_CCCD_CODE: Final = {p.code: p.cccd_code for p in reference.PROVINCES if p.cccd_code is not None}
# Birth-registration codes of the provinces other than the school's, for those born elsewhere.
_OTHER_CCCD_CODES: Final = {
    province: tuple(code for code in _CCCD_CODE.values() if code != own)
    for province, own in _CCCD_CODE.items()
}


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One SYNTHETIC candidate of the national roster (what a school would import)."""

    national_id: str  # 12 digits PPP G YY RRRRRR (domain.md §7.5)
    full_name: str  # NFC, upper case with diacritics
    date_of_birth: date
    sex: Sex
    candidate_type: CandidateType
    province_code: str  # exam province code (§7.1) of the grade-12 school
    school_code: str  # a school of reference.schools() in that province
    phone: str  # "0" + 9 digits with a real mobile prefix


def _scramble(value: int, rounds: tuple[tuple[int, ...], ...]) -> int:
    """A bijection of 0…999,999: a balanced Feistel network on two 3-digit halves."""
    left, right = divmod(value, 1000)
    for table in rounds:
        left, right = right, (left + table[right]) % 1000
    return left * 1000 + right


class _NationalIds:
    """Unique CCCD numbers: per `PPP G YY` head, a counter sent through `_scramble`.

    Distinct counters give distinct tails, so a run never repeats an ID, without the memory of a
    set of 1.2 million strings; the scramble makes tails look random, as real ones are (§7.5).
    """

    __slots__ = ("_heads", "_rng", "_rounds")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._rounds = tuple(tuple(rng.randrange(1000) for _ in range(1000)) for _ in range(4))
        self._heads: dict[str, list[int]] = {}

    def issue(self, head: str) -> str:
        state = self._heads.get(head)
        if state is None:
            state = self._heads[head] = [0, self._rng.randrange(_ID_SPACE)]
        issued, offset = state
        if issued >= _ID_SPACE:
            raise ValueError(f"roster too large: all {_ID_SPACE:,} IDs starting {head} are used")
        state[0] = issued + 1
        return f"{head}{_scramble((issued + offset) % _ID_SPACE, self._rounds):06d}"


def _century_sex_digit(year: int, sex: Sex) -> int:
    # domain.md §7.5 / V1: 1900s male 0 / female 1, 2000s male 2 / female 3 … even is MALE.
    return 2 * (year // 100 - 19) + (sex == "female")


def _full_name(rng: random.Random, sex: Sex) -> str:
    given = _GIVEN[sex](rng.random())
    middle = _MIDDLE[sex](rng.random())
    while middle == given:  # "MINH MINH" is not a name anyone gives
        middle = _MIDDLE[sex](rng.random())
    if rng.random() < _SECOND_MIDDLE_SHARE[sex] and middle != _FIRST_OF_TWO[sex]:
        middle = f"{_FIRST_OF_TWO[sex]} {middle}"
    return f"{_SURNAMES(rng.random())} {middle} {given}"


def _free_birth_years(exam_year: int) -> _Picker[int]:
    # Free candidates are mostly last year's failures and recent graduates; a tail up to age 40.
    return _Picker((exam_year - age, 1 / (age - 18) ** 1.3) for age in range(19, 41))


class _RosterMaker:
    """The state of one run: its random stream, issued IDs and birth-year tables."""

    def __init__(self, seed: int, exam_year: int) -> None:
        self._rng = random.Random(seed)
        self._ids = _NationalIds(random.Random(f"national-id:{seed}"))
        self._cohort = exam_year - 18  # in grade 12 in the year they turn 18
        self._free_years = _free_birth_years(exam_year)
        self._calendar = {
            year: (date(year, 1, 1).toordinal(), (date(year + 1, 1, 1) - date(year, 1, 1)).days)
            for year in range(exam_year - 40, exam_year - 17)
        }

    def _type_and_year(self) -> tuple[CandidateType, int]:
        rng = self._rng
        if rng.random() >= FREE_CANDIDATE_SHARE:
            older = rng.random() < _OLDER_GRADE12_SHARE
            return "a", self._cohort - older
        return _FREE_TYPES(rng.random()), self._free_years(rng.random())

    def _school(self, province: str, candidate_type: CandidateType) -> str:
        u = self._rng.random()
        if candidate_type != "a" and u < 0.04:
            return "900" if u < 0.03 else "800"  # serving military; studied abroad
        schools = _REGULAR_SCHOOLS[province]
        return schools[int(self._rng.random() * len(schools))]

    def entry(self) -> RosterEntry:
        rng = self._rng
        province = _PROVINCES(rng.random())
        candidate_type, year = self._type_and_year()
        sex: Sex = "female" if rng.random() < 0.5 else "male"
        first_day, days = self._calendar[year]
        prefix = _CCCD_CODE[province]
        if rng.random() < _BORN_ELSEWHERE_SHARE:
            others = _OTHER_CCCD_CODES[province]
            prefix = others[int(rng.random() * len(others))]
        head = f"{prefix}{_century_sex_digit(year, sex)}{year % 100:02d}"
        return RosterEntry(
            national_id=self._ids.issue(head),
            full_name=_full_name(rng, sex),
            date_of_birth=date.fromordinal(first_day + int(rng.random() * days)),
            sex=sex,
            candidate_type=candidate_type,
            province_code=province,
            school_code=self._school(province, candidate_type),
            phone=f"{_PHONE_PREFIXES(rng.random())}{int(rng.random() * 10_000_000):07d}",
        )


def generate_roster(
    count: int, *, seed: int = 2026, exam_year: int = 2026
) -> Iterator[RosterEntry]:
    """Yield `count` SYNTHETIC candidates, deterministically for a given seed.

    Provinces are weighted by their real 2024 registrations (domain.md §8.1); ≈96% are grade-12
    students (type a, born `exam_year − 18`, a few a year earlier), ≈4% free candidates of types
    b/c/d born `exam_year − 40 … exam_year − 19`. National IDs follow the CCCD rules (§7.5) and are
    unique within the run.

    Args:
        count: how many entries; 0 yields nothing.
        seed: the random seed; the same seed gives the same roster, and a longer run starts with
            the entries of a shorter one.
        exam_year: the exam year the birth years are counted from.

    Raises:
        ValueError: at the call, for a negative count or an exam year whose candidates would be
            born outside 1900–2399 (where the CCCD century digit is defined).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    if not 1940 <= exam_year <= 2417:
        raise ValueError(f"exam_year must be within 1940–2417, not {exam_year}")
    return _entries(_RosterMaker(seed, exam_year), count)


def _entries(maker: _RosterMaker, count: int) -> Iterator[RosterEntry]:
    for _ in range(count):
        yield maker.entry()


# ---------------------------------------------------------------------------------------------
# Registration forms (the body of PUT /api/v1/me/registration, architecture.md §6.3).

# 2019 census shares (%) of the largest groups by domain.md §7.6 code; every other group 0.03.
_ETHNICITY_SHARE: Final = {
    "01": 85.32, "02": 1.92, "03": 1.88, "06": 1.52, "08": 1.45, "05": 1.32, "07": 1.08,
    "09": 0.93, "04": 0.78, "10": 0.54, "12": 0.41, "13": 0.30, "14": 0.22, "15": 0.21,
    "16": 0.21, "17": 0.19, "18": 0.19, "19": 0.15, "21": 0.15, "20": 0.13,
}  # fmt: skip
_ETHNICITIES: Final = _Picker(
    (name, _ETHNICITY_SHARE.get(code, 0.03)) for code, name in reference.ETHNICITIES
)
_MAJORITY_ETHNICITY: Final = reference.ETHNICITIES[0][1]  # Kinh
_BIRTHPLACE: Final = {p.cccd_code: p.name for p in reference.PROVINCES if p.cccd_code}
# Elective choices, roughly the 2025 registration shares (%).
_ELECTIVES: Final = _Picker(
    [("DIA", 41), ("SU", 33), ("LI", 35), ("NN", 31), ("HOA", 21), ("GDKTPL", 21), ("SINH", 6),
     ("TIN", 0.7), ("CNNN", 0.5), ("CNCN", 0.25)]
)  # fmt: skip
_LANGUAGE: Final = _Picker(
    [("N1", 96.5), ("N4", 1.0), ("N6", 0.8), ("N3", 0.8), ("N7", 0.5), ("N2", 0.2), ("N5", 0.2)]
)
_EXEMPTION_SHARE: Final = 0.06  # of those taking NN; 6.25% of all candidates in 2024 (§8.1)
_POPULAR_CERTIFICATES: Final = {"IELTS": 12.0, "VSTEP_3": 3.0, "TOEFL_IBT": 2.0}
_CERTIFICATES: Final = {
    code: _Picker(
        (cert, _POPULAR_CERTIFICATES.get(cert, 1.0))
        for cert, language, _ in reference.CERTIFICATES
        if language == code
    )
    for code, _, _ in reference.LANGUAGES
    if any(language == code for _, language, _ in reference.CERTIFICATES)
}
_STREETS: Final = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Nguyễn Huệ", "Điện Biên Phủ", "Lê Duẩn", "Phan Chu Trinh", "Hùng Vương", "Trần Phú",
    "Nguyễn Du", "Lê Thánh Tông", "Võ Thị Sáu", "Bà Triệu", "Ngô Quyền", "Nguyễn Văn Cừ",
    "Phạm Văn Đồng", "Lạc Long Quân", "Hoàng Diệu", "Trường Chinh", "Cách Mạng Tháng Tám",
    "Nguyễn Thị Minh Khai", "Lê Hồng Phong", "Tôn Đức Thắng", "Hoàng Hoa Thám", "Phan Đình Phùng",
)  # fmt: skip
_WARDS: Final = (
    "Tân Phú", "Hòa Bình", "An Khánh", "Bình An", "Phú Lợi", "Quang Trung", "Thành Công",
    "Đông Hòa", "Tân Lập", "Hưng Thịnh", "Long Bình", "Hiệp Hòa", "Phước Long", "Thanh Xuân",
    "Yên Hòa", "Ngọc Hà", "Trung Hòa", "Minh Khai", "Tân Thạnh", "Vĩnh Phúc", "Đồng Tâm",
)  # fmt: skip
# RFC 2606 reserved domains: a synthetic address must never reach a real mailbox.
_EMAIL_DOMAINS: Final = ("example.com", "example.net", "example.org")


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _address(rng: random.Random) -> str:
    number = str(rng.randint(1, 350))
    if rng.random() < 0.25:
        number += f"/{rng.randint(1, 60)}"  # an alley (hẻm) off the street
    ward = ("Phường " if rng.random() < 0.6 else "Xã ") + rng.choice(_WARDS)
    return f"{number} {rng.choice(_STREETS)}, {ward}"


def _email(entry: RosterEntry, rng: random.Random) -> str | None:
    if rng.random() < 0.3:
        return None
    words = _ascii(entry.full_name).split()
    local = f"{words[-1]}.{words[0]}" if rng.random() < 0.5 else "".join(words)
    if rng.random() < 0.7:
        local += f"{entry.date_of_birth.year % 100:02d}"
    elif rng.random() < 0.5:
        local += str(rng.randint(1, 999))
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _schools(entry: RosterEntry, rng: random.Random) -> list[dict[str, Any]]:
    years = {grade: entry.school_code for grade in (10, 11, 12)}
    regular = _REGULAR_SCHOOLS[entry.province_code]
    if entry.school_code not in _SPECIAL_SCHOOLS and rng.random() < 0.05:
        # A transfer: grade 10 (sometimes 11 too) at another school of the province.
        earlier = rng.choice([code for code in regular if code != entry.school_code])
        for grade in (10, 11) if rng.random() < 0.4 else (10,):
            years[grade] = earlier
    return [
        {"grade": grade, "province_code": entry.province_code, "school_code": code}
        for grade, code in years.items()
    ]


def _purposes(candidate_type: CandidateType, rng: random.Random) -> list[str]:
    # Types c and d already hold a diploma and sit for admission only (domain.md §3); 2022 had
    # 86% both, 10% graduation only (§4.6 11a).
    if candidate_type in ("c", "d"):
        return ["admission"]
    if rng.random() < (0.11 if candidate_type == "a" else 0.4):
        return ["graduation"]
    return ["graduation", "admission"]


def _electives(rng: random.Random) -> list[str]:
    first = _ELECTIVES(rng.random())
    second = _ELECTIVES(rng.random())
    while second == first or {first, second} == reference.EXCLUSIVE_ELECTIVES:
        second = _ELECTIVES(rng.random())
    return [first, second]


def _exemptions(language: str | None, rng: random.Random) -> dict[str, Any] | None:
    certificates = _CERTIFICATES.get(language or "")
    if certificates is None or rng.random() >= _EXEMPTION_SHARE:
        return None  # Korean (N7) has no certificate on the list (§7.9)
    return {  # canonical: every member of the exemption, as the validator returns it
        "foreign_language_certificate": certificates(rng.random()),
        "foreign_language_basis": "CERTIFICATE",
        "certificate_score": None,
        "certificate_expires_on": None,
        "literature_certificate_level": None,
        "all_papers_reason": None,
    }


def _priority_group(
    ethnicity: str, candidate_type: CandidateType, rng: random.Random
) -> str | None:
    # 01 needs >18 months' residence in KV1, which these forms never declare (§7.4); minorities
    # outside it are group 06.
    if ethnicity != _MAJORITY_ETHNICITY:
        return "06" if rng.random() < 0.6 else None
    if rng.random() >= 0.03:
        return None
    return rng.choice(("04", "06", "07") if candidate_type == "a" else ("02", "03", "05"))


def sample_form(entry: RosterEntry, rng: random.Random) -> dict[str, Any]:
    """A valid SYNTHETIC registration form for `entry`: the body of PUT /api/v1/me/registration.

    Identity fields copy the roster entry; the birthplace is the province that registered the
    birth (the CCCD prefix, §7.5); the rest is drawn from `rng` with realistic shares.
    """
    electives = _electives(rng)
    language = _LANGUAGE(rng.random()) if "NN" in electives else None
    ethnicity = _ETHNICITIES(rng.random())
    schools = _schools(entry, rng)
    grade_12 = next((row for row in schools if row["grade"] == 12), None)
    return {
        "full_name": entry.full_name,
        "date_of_birth": entry.date_of_birth.isoformat(),
        "sex": entry.sex,
        "national_id": entry.national_id,
        "ethnicity": ethnicity,
        "birthplace": _BIRTHPLACE[entry.national_id[:3]],
        "residence": {
            "address": _address(rng),
            "province_code": entry.province_code,
            "commune_code": None,
            "kv1_over_18_months": False,
            "district_code": None,
            "difficult_commune_over_18_months": False,
        },
        "schools": schools,
        "phone": entry.phone,
        "email": _email(entry, rng),
        "candidate_type": entry.candidate_type,
        "purposes": _purposes(entry.candidate_type, rng),
        "electives": electives,
        "foreign_language": language,
        "exemptions": _exemptions(language, rng),
        "priority_group": _priority_group(ethnicity, entry.candidate_type, rng),
        "exam_site_province": entry.province_code,
        # Drawn last, so the fields above stay what they were for a given seed.
        "class_12": f"12A{rng.randint(1, 12)}" if entry.candidate_type == "a" else None,
        "contact_address": _address(rng) if rng.random() < 0.2 else None,
        # The rest at its canonical default, so a sample form is already in canonical form.
        "curriculum": "GDPT2018",
        "study_track": "THPT",
        "foreign_national": False,
        "diploma_year": None,
        "reserved_scores": [],
        "graduation_priority": None,
        "graduation_encouragement": None,
        "registration_unit": {
            "province_code": grade_12["province_code"],
            "unit_code": grade_12["school_code"],
        }
        if entry.candidate_type == "a" and grade_12
        else None,
        "photo_sha256": None,
    }
