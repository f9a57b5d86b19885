"""Reference data of the exam: real codes (sources below), plus synthetic schools.

Sources, as the team's domain notes (domain.md §7) record them: exam province / DOET codes
(mã tỉnh / mã Sở, in use 2002–2025; 20 unused, 65 the Ministry of Defence's schools) from the
Ministry's published score data and form guides; the 54 ethnicities in the order and numbering of
GSO Decision 121-TCTK/PPCĐ (1979); foreign languages N1–N7 as on the form; the foreign-language
exemption certificates of the 2024 list (Circular 02/2024), the last list fully retrieved; the
priority groups 01–07 (§7.4). School codes and names are SYNTHETIC.

Owns the code lists the validator, the schema seed and the roster generator share. It does no IO:
the constants are rendered into `engine/adapters/schema/0002_reference.sql` by `render_sql()`, and
a test checks that the committed migration equals that rendering, so database and validator never
disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Province:
    """An exam province / DOET code (mã tỉnh, domain.md §7.1, used 2002–2025)."""

    code: str
    name: str
    name_from_2025: str
    cccd_code: str | None  # 3-digit birth-registration code (domain.md §7.5); None for code 65


# domain.md §7.1 [C]/[P]; code 20 (former Hà Tây) is unused. cccd_code is matched by name to §7.5.
PROVINCES: Final[tuple[Province, ...]] = (
    Province("01", "TP Hà Nội", "Hà Nội", "001"),
    Province("02", "TP Hồ Chí Minh", "TP Hồ Chí Minh", "079"),
    Province("03", "TP Hải Phòng", "TP Hải Phòng", "031"),
    Province("04", "TP Đà Nẵng", "TP Đà Nẵng", "048"),
    Province("05", "Hà Giang", "Tuyên Quang", "002"),
    Province("06", "Cao Bằng", "Cao Bằng", "004"),
    Province("07", "Lai Châu", "Lai Châu", "012"),
    Province("08", "Lào Cai", "Lào Cai", "010"),
    Province("09", "Tuyên Quang", "Tuyên Quang", "008"),
    Province("10", "Lạng Sơn", "Lạng Sơn", "020"),
    Province("11", "Bắc Kạn", "Thái Nguyên", "006"),
    Province("12", "Thái Nguyên", "Thái Nguyên", "019"),
    Province("13", "Yên Bái", "Lào Cai", "015"),
    Province("14", "Sơn La", "Sơn La", "014"),
    Province("15", "Phú Thọ", "Phú Thọ", "025"),
    Province("16", "Vĩnh Phúc", "Phú Thọ", "026"),
    Province("17", "Quảng Ninh", "Quảng Ninh", "022"),
    Province("18", "Bắc Giang", "Bắc Ninh", "024"),
    Province("19", "Bắc Ninh", "Bắc Ninh", "027"),
    Province("21", "Hải Dương", "TP Hải Phòng", "030"),
    Province("22", "Hưng Yên", "Hưng Yên", "033"),
    Province("23", "Hòa Bình", "Phú Thọ", "017"),
    Province("24", "Hà Nam", "Ninh Bình", "035"),
    Province("25", "Nam Định", "Ninh Bình", "036"),
    Province("26", "Thái Bình", "Hưng Yên", "034"),
    Province("27", "Ninh Bình", "Ninh Bình", "037"),
    Province("28", "Thanh Hóa", "Thanh Hóa", "038"),
    Province("29", "Nghệ An", "Nghệ An", "040"),
    Province("30", "Hà Tĩnh", "Hà Tĩnh", "042"),
    Province("31", "Quảng Bình", "Quảng Trị", "044"),
    Province("32", "Quảng Trị", "Quảng Trị", "045"),
    Province("33", "Thừa Thiên Huế", "TP Huế", "046"),
    Province("34", "Quảng Nam", "TP Đà Nẵng", "049"),
    Province("35", "Quảng Ngãi", "Quảng Ngãi", "051"),
    Province("36", "Kon Tum", "Quảng Ngãi", "062"),
    Province("37", "Bình Định", "Gia Lai", "052"),
    Province("38", "Gia Lai", "Gia Lai", "064"),
    Province("39", "Phú Yên", "Đắk Lắk", "054"),
    Province("40", "Đắk Lắk", "Đắk Lắk", "066"),
    Province("41", "Khánh Hòa", "Khánh Hòa", "056"),
    Province("42", "Lâm Đồng", "Lâm Đồng", "068"),
    Province("43", "Bình Phước", "Đồng Nai", "070"),
    Province("44", "Bình Dương", "TP Hồ Chí Minh", "074"),
    Province("45", "Ninh Thuận", "Khánh Hòa", "058"),
    Province("46", "Tây Ninh", "Tây Ninh", "072"),
    Province("47", "Bình Thuận", "Lâm Đồng", "060"),
    Province("48", "Đồng Nai", "Đồng Nai", "075"),
    Province("49", "Long An", "Tây Ninh", "080"),
    Province("50", "Đồng Tháp", "Đồng Tháp", "087"),
    Province("51", "An Giang", "An Giang", "089"),
    Province("52", "Bà Rịa – Vũng Tàu", "TP Hồ Chí Minh", "077"),
    Province("53", "Tiền Giang", "Đồng Tháp", "082"),
    Province("54", "Kiên Giang", "An Giang", "091"),
    Province("55", "TP Cần Thơ", "TP Cần Thơ", "092"),
    Province("56", "Bến Tre", "Vĩnh Long", "083"),
    Province("57", "Vĩnh Long", "Vĩnh Long", "086"),
    Province("58", "Trà Vinh", "Vĩnh Long", "084"),
    Province("59", "Sóc Trăng", "TP Cần Thơ", "094"),
    Province("60", "Bạc Liêu", "Cà Mau", "095"),
    Province("61", "Cà Mau", "Cà Mau", "096"),
    Province("62", "Điện Biên", "Điện Biên", "011"),
    Province("63", "Đắk Nông", "Lâm Đồng", "067"),
    Province("64", "Hậu Giang", "TP Cần Thơ", "093"),
    Province("65", "Cục Nhà trường – Bộ Quốc phòng", "n/a", None),
)

# domain.md §7.6: GSO Decision 121-TCTK/PPCĐ (1979) order; the form records the name.
ETHNICITIES: Final[tuple[tuple[str, str], ...]] = (
    ("01", "Kinh"),
    ("02", "Tày"),
    ("03", "Thái"),
    ("04", "Hoa"),
    ("05", "Khơ-me"),
    ("06", "Mường"),
    ("07", "Nùng"),
    ("08", "HMông"),
    ("09", "Dao"),
    ("10", "Gia-rai"),
    ("11", "Ngái"),
    ("12", "Ê-đê"),
    ("13", "Ba Na"),
    ("14", "Xơ-Đăng"),
    ("15", "Sán Chay"),
    ("16", "Cơ-ho"),
    ("17", "Chăm"),
    ("18", "Sán Dìu"),
    ("19", "Hrê"),
    ("20", "Mnông"),
    ("21", "Ra-glai"),
    ("22", "Xtiêng"),
    ("23", "Bru-Vân Kiều"),
    ("24", "Thổ"),
    ("25", "Giáy"),
    ("26", "Cơ-tu"),
    ("27", "Gié Triêng"),
    ("28", "Mạ"),
    ("29", "Khơ-mú"),
    ("30", "Co"),
    ("31", "Tà-ôi"),
    ("32", "Chơ-ro"),
    ("33", "Kháng"),
    ("34", "Xinh-mun"),
    ("35", "Hà Nhì"),
    ("36", "Chu-ru"),
    ("37", "Lào"),
    ("38", "La Chí"),
    ("39", "La Ha"),
    ("40", "Phù Lá"),
    ("41", "La Hủ"),
    ("42", "Lự"),
    ("43", "Lô Lô"),
    ("44", "Chứt"),
    ("45", "Mảng"),
    ("46", "Pà Thẻn"),
    ("47", "Cờ Lao"),
    ("48", "Cống"),
    ("49", "Bố Y"),
    ("50", "Si La"),
    ("51", "Pu Péo"),
    ("52", "Brâu"),
    ("53", "Ơ Đu"),
    ("54", "Rơ Măm"),
)

# domain.md §7.5 [P]: 3-digit birth-registration province codes (GSO administrative codes).
CCCD_PROVINCE_CODES: Final[dict[str, str]] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa–Vũng Tàu",
    "079": "TP HCM",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

# domain.md §4.7: compulsory subjects and the 10 electives (identifiers are ours, [I]).
COMPULSORY_SUBJECTS: Final[tuple[tuple[str, str], ...]] = (("TOAN", "Toán"), ("VAN", "Ngữ văn"))
ELECTIVES: Final[tuple[tuple[str, str], ...]] = (
    ("LI", "Vật lí"),
    ("HOA", "Hóa học"),
    ("SINH", "Sinh học"),
    ("SU", "Lịch sử"),
    ("DIA", "Địa lí"),
    ("GDKTPL", "Giáo dục kinh tế và pháp luật"),
    ("TIN", "Tin học"),
    ("CNCN", "Công nghệ – Công nghiệp"),
    ("CNNN", "Công nghệ – Nông nghiệp"),
    ("NN", "Ngoại ngữ"),
)
# The two Technology variants cannot be combined (domain.md §4.7 12b, V5).
EXCLUSIVE_ELECTIVES: Final[frozenset[str]] = frozenset({"CNCN", "CNNN"})

# domain.md §4.7 12c / §7.7.
LANGUAGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("N1", "Tiếng Anh", "English"),
    ("N2", "Tiếng Nga", "Russian"),
    ("N3", "Tiếng Pháp", "French"),
    ("N4", "Tiếng Trung Quốc", "Chinese"),
    ("N5", "Tiếng Đức", "German"),
    ("N6", "Tiếng Nhật", "Japanese"),
    ("N7", "Tiếng Hàn", "Korean"),
)

# domain.md §7.9: foreign-language exemption certificates and their minimum level (2024 list,
# TT 02/2024). Korean (N7) has none. Codes are ours.
CERTIFICATES: Final[tuple[tuple[str, str, str], ...]] = (
    ("TOEFL_ITP", "N1", "TOEFL ITP 450"),
    ("TOEFL_IBT", "N1", "TOEFL iBT 45"),
    ("IELTS", "N1", "IELTS 4.0 (British Council, IDP)"),
    ("B1_PRELIMINARY", "N1", "B1 Preliminary"),
    ("B1_BUSINESS_PRELIMINARY", "N1", "B1 Business Preliminary"),
    ("LINGUASKILL_B1", "N1", "B1 Linguaskill"),
    ("APTIS_ESOL_B1", "N1", "Aptis ESOL B1"),
    ("PEARSON_L2", "N1", "Pearson English International Certificate Level 2"),
    ("TOEIC_4_SKILLS", "N1", "TOEIC 4 kỹ năng (L&R 275 + S&W 120)"),
    ("VSTEP_3", "N1", "VSTEP bậc 3"),
    ("TORFL_1", "N2", "TORFL cấp độ 1 (ТРКИ-1)"),
    ("TCF", "N3", "TCF 300–400"),
    ("DELF_B1", "N3", "DELF B1"),
    ("HSK_3", "N4", "HSK cấp độ 3"),
    ("TOCFL_3", "N4", "TOCFL cấp độ 3"),
    ("GOETHE_B1", "N5", "Goethe-Zertifikat B1"),
    ("DSD_B1", "N5", "Deutsches Sprachdiplom B1"),
    ("ZERTIFIKAT_B1", "N5", "Zertifikat B1"),
    ("JLPT_N3", "N6", "JLPT N3"),
)

# domain.md §7.4: admission priority groups 01–07 (2022–2025 rule).
PRIORITY_GROUPS: Final[tuple[tuple[str, str], ...]] = (
    ("01", "Người dân tộc thiểu số có hộ khẩu thường trú trên 18 tháng tại KV1"),
    ("02", "Công nhân trực tiếp sản xuất, chiến sĩ thi đua cấp tỉnh"),
    ("03", "Thương binh, bệnh binh; quân nhân, công an đủ thời gian phục vụ"),
    ("04", "Con liệt sĩ, con thương binh ≥81%, con Anh hùng, Bà mẹ VN anh hùng"),
    ("05", "Thanh niên xung phong; quân nhân, công an phục vụ dưới 18 tháng ngoài KV1"),
    ("06", "Con thương binh <81%; người dân tộc thiểu số không thuộc nhóm 01"),
    ("07", "Người khuyết tật nặng; giáo viên, y tá đủ điều kiện"),
)

# domain.md §3.
CANDIDATE_TYPES: Final[tuple[tuple[str, str], ...]] = (
    ("a", "Học sinh lớp 12 năm nay"),
    ("b", "Thí sinh tự do chưa tốt nghiệp THPT"),
    ("c", "Thí sinh tự do đã có bằng tốt nghiệp THPT"),
    ("d", "Thí sinh tự do có bằng trung cấp"),
)

# domain.md §4.6 item 9: curriculum × track; 2025 ran separate 2006-curriculum papers [C] S16.
CURRICULA: Final[tuple[tuple[str, str, str], ...]] = (
    ("GDPT2018", "Chương trình GDPT 2018", "2018 curriculum"),
    ("GDPT2006", "Chương trình GDPT 2006 (thí sinh tự do, đề thi riêng)", "2006 curriculum"),
)
STUDY_TRACKS: Final[tuple[tuple[str, str, str], ...]] = (
    ("THPT", "Giáo dục THPT", "Upper-secondary school"),
    ("GDTX", "Giáo dục thường xuyên", "Continuing education"),
)
# domain.md §4.7 12d: the 2006 curriculum's combined papers (plus Ngoại ngữ); identifiers are ours.
OLD_CURRICULUM_PAPERS: Final[tuple[tuple[str, str], ...]] = (
    ("KHTN", "Khoa học tự nhiên (Lí, Hóa, Sinh)"),
    ("KHXH", "Khoa học xã hội (Sử, Địa, GDCD)"),
    ("NN", "Ngoại ngữ"),
)
# domain.md §4.8 13a: the ground of a foreign-language exemption.
EXEMPTION_BASES: Final[tuple[tuple[str, str, str], ...]] = (
    ("CERTIFICATE", "Chứng chỉ ngoại ngữ", "Language certificate"),
    ("OLYMPIC_TEAM", "Thành viên đội tuyển Olympic quốc gia môn Ngoại ngữ", "Olympiad team"),
)
# domain.md §4.8 13c [C] S7: the three cases exempt from every paper. Codes are ours.
ALL_PAPERS_REASONS: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "NATIONAL_OLYMPIAD_SELECTION",
        "Được triệu tập tham dự kỳ thi chọn đội tuyển quốc gia dự thi Olympic quốc tế",
        "Summoned to the national Olympiad team selection",
    ),
    (
        "INTERNATIONAL_TEAM",
        "Thành viên đội tuyển dự thi Olympic, khoa học kỹ thuật, văn hóa văn nghệ quốc tế/khu vực",
        "Member of an international or regional Olympiad, science or arts team",
    ),
    (
        "DISABILITY",
        "Khuyết tật nặng / đặc biệt nặng; người (hoặc con của người) nhiễm chất độc hóa học ≥61%",
        "Severe disability, or Agent-Orange-affected (≥61%) person or their child",
    ),
)
# domain.md §4.8 item 15 [P] S78: graduation priority tiers (+0.25, +0.5). Codes are ours.
GRADUATION_PRIORITIES: Final[tuple[tuple[str, str, str], ...]] = (
    ("P025", "Diện ưu tiên cộng 0,25 điểm", "Priority +0.25"),
    ("P050", "Diện ưu tiên cộng 0,5 điểm", "Priority +0.5"),
)
# Encouragement points for graduation: the vocational certificate's was abolished from 2025 [C] S71;
# whether it is offered at all is a setting (EXAMREG_FORM_VOCATIONAL_ENCOURAGEMENT).
GRADUATION_ENCOURAGEMENTS: Final[tuple[tuple[str, str, str], ...]] = (
    ("VOCATIONAL_CERTIFICATE", "Chứng nhận nghề (bỏ từ 2025)", "Vocational certificate"),
)
# domain.md §4.4 6c [P]: school codes valid in every province: studied abroad; serving military.
SPECIAL_SCHOOL_CODES: Final[tuple[tuple[str, str], ...]] = (
    ("800", "Học ở nước ngoài"),
    ("900", "Quân nhân, Công an tại ngũ"),
)


def form_choices() -> dict[str, list[dict[str, str]]]:
    """The form's code lists that live in code, not in the reference tables (GET /reference)."""

    def rows(items: Sequence[tuple[str, ...]]) -> list[dict[str, str]]:
        keys = ("code", "name", "name_en")
        return [dict(zip(keys, item, strict=False)) for item in items]

    return {
        "curricula": rows(CURRICULA),
        "study_tracks": rows(STUDY_TRACKS),
        "old_curriculum_papers": rows(OLD_CURRICULUM_PAPERS),
        "exemption_bases": rows(EXEMPTION_BASES),
        "all_papers_reasons": rows(ALL_PAPERS_REASONS),
        "graduation_priorities": rows(GRADUATION_PRIORITIES),
        "graduation_encouragements": rows(GRADUATION_ENCOURAGEMENTS),
        "special_school_codes": rows(SPECIAL_SCHOOL_CODES),
    }


# domain.md §8.1 [C] S26: 2024 registrations of the largest and smallest provinces; the roster
# generator weights these provinces by them and the rest evenly.
REGISTRATIONS_2024: Final[dict[str, int]] = {"01": 109_078, "02": 88_196, "28": 38_677, "11": 3_180}

# SYNTHETIC: real school lists are MOET's and not public in a usable form; each province gets
# SCHOOLS_PER_PROVINCE schools with 3-digit codes 001… and invented names, plus the special codes
# 800 (studied abroad) and 900 (serving military/police) of domain.md §4.4 [P].
SCHOOLS_PER_PROVINCE: Final = 6
_SCHOOL_NAMES: Final = (
    "THPT Chuyên {p}",
    "THPT Lê Quý Đôn",
    "THPT Nguyễn Trãi",
    "THPT Trần Phú",
    "THPT Lý Thường Kiệt",
    "Trung tâm GDNN-GDTX {p}",
)
_KV: Final = ("KV3", "KV2", "KV2-NT", "KV1")


@dataclass(frozen=True, slots=True)
class School:
    """A school code (mã trường) within a province (domain.md §7.3); synthetic."""

    province_code: str
    school_code: str
    name: str
    priority_area: str


def _short_province(name: str) -> str:
    return name.removeprefix("TP ")


def schools() -> tuple[School, ...]:
    """The synthetic school list: deterministic, the same on every machine."""
    result: list[School] = []
    for province in PROVINCES:
        if province.code == "65":
            continue
        for index, template in enumerate(_SCHOOL_NAMES, start=1):
            digest = hashlib.sha256(f"{province.code}{index}".encode()).digest()
            result.append(
                School(
                    province.code,
                    f"{index:03d}",
                    template.format(p=_short_province(province.name)),
                    _KV[digest[0] % len(_KV)],
                )
            )
        result.append(School(province.code, "800", "Học ở nước ngoài", "KV3"))
        result.append(School(province.code, "900", "Quân nhân, Công an tại ngũ", "KV3"))
    return tuple(result)


def _sql_literal(value: str | bool | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + value.replace("'", "''") + "'"


def _insert(table: str, columns: str, rows: Sequence[tuple[str | bool | None, ...]]) -> str:
    values = ",\n".join("  (" + ", ".join(_sql_literal(v) for v in row) + ")" for row in rows)
    return f"INSERT INTO {table} ({columns}) VALUES\n{values}\nON CONFLICT DO NOTHING;\n"


def render_sql() -> str:
    """The reference-data migration, rendered from the constants above."""
    parts = [
        "-- Generated by `python -m engine.domain.reference`"
        " from engine/domain/reference.py; do not edit.\n",
        "SET lock_timeout = '5s';\n",
        _insert(
            "provinces",
            "code, name, name_from_2025, cccd_code",
            [(p.code, p.name, p.name_from_2025, p.cccd_code) for p in PROVINCES],
        ),
        _insert(
            "schools",
            "province_code, school_code, name, priority_area",
            [(s.province_code, s.school_code, s.name, s.priority_area) for s in schools()],
        ),
        _insert(
            "subjects",
            "code, name, compulsory",
            [(c, n, True) for c, n in COMPULSORY_SUBJECTS] + [(c, n, False) for c, n in ELECTIVES],
        ),
        _insert("languages", "code, name, name_en", list(LANGUAGES)),
        _insert("certificates", "code, language_code, name", list(CERTIFICATES)),
        _insert("ethnicities", "code, name", list(ETHNICITIES)),
        _insert("priority_groups", "code, description", list(PRIORITY_GROUPS)),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render_sql(), end="")
