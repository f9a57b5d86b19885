"""The printed Phiếu đăng ký dự thi: a canonical form laid out as the official form's items.

Owns what the printable form says (domain.md §4: header with the DOET and its code, the number,
the photo box, items 1–16, the candidate's pledge and both signature blanks), shared by the print
page, the PDF and the support desk's record, and the verification code printed on it: an HMAC of
the receipt and version under the deployment's secret, which the desk recomputes to tell a
genuine print from an edited one. The item numbering of the 2025 Appendix II is only partly known
(domain.md Q2: 16 items); items 5–16 here are reconstructed from the 2018–2021 guides. Pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from engine.domain import reference

_PROVINCES: Final = {p.code: p.name for p in reference.PROVINCES}
_ELECTIVES: Final = dict(reference.ELECTIVES) | {
    code: name for code, name in reference.OLD_CURRICULUM_PAPERS
}
_SUBJECTS: Final = dict(reference.COMPULSORY_SUBJECTS) | _ELECTIVES
_LANGUAGES: Final = {code: vi for code, vi, _ in reference.LANGUAGES}
_CERTIFICATES: Final = {code: name for code, _, name in reference.CERTIFICATES}
_PRIORITY: Final = dict(reference.PRIORITY_GROUPS)
_TYPES: Final = dict(reference.CANDIDATE_TYPES)
_CURRICULA: Final = {code: vi for code, vi, _ in reference.CURRICULA}
_TRACKS: Final = {code: vi for code, vi, _ in reference.STUDY_TRACKS}
_BASES: Final = {code: vi for code, vi, _ in reference.EXEMPTION_BASES}
_ALL_PAPERS: Final = {code: vi for code, vi, _ in reference.ALL_PAPERS_REASONS}
_GRAD_PRIORITY: Final = {code: vi for code, vi, _ in reference.GRADUATION_PRIORITIES}
_ENCOURAGEMENT: Final = {code: vi for code, vi, _ in reference.GRADUATION_ENCOURAGEMENTS}
_SPECIAL: Final = dict(reference.SPECIAL_SCHOOL_CODES)
_PURPOSES: Final = {
    "graduation": "Xét công nhận tốt nghiệp THPT",
    "admission": "Xét tuyển sinh đại học, cao đẳng",
}
PLEDGE: Final = (
    "Tôi xin cam đoan những lời khai trong Phiếu đăng ký dự thi này là đúng sự thật. "
    "Nếu sai, tôi xin chịu xử lý theo Quy chế thi.",
    "I declare that what this form states is true; if not, I accept the measures of the "
    "exam regulations.",
)


@dataclass(frozen=True, slots=True)
class Line:
    """One printed item: its number on the form, label (Vietnamese, English) and value."""

    number: str
    label: str
    label_en: str
    value: str
    boxes: str = ""  # digits printed one per box (codes), as on the paper form


@dataclass(frozen=True, slots=True)
class Phieu:
    """Everything the printed form shows, as text."""

    year: int
    doet_name: str
    doet_code: str
    receipt_id: str
    version: int
    accepted_at: str
    verification_code: str
    photo_sha256: str | None
    lines: tuple[Line, ...]
    reserved_scores: tuple[tuple[str, str, str], ...] = field(default=())
    pledge: tuple[str, str] = PLEDGE

    @property
    def lines_before_reserved(self) -> tuple[Line, ...]:
        """Items 1–13: what comes before item 14, the reserved-score table."""
        return tuple(line for line in self.lines if line.number and int(line.number) <= 13)

    @property
    def lines_after_reserved(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if not line.number or int(line.number) > 14)


def verification_code(key: str, receipt_id: str, version: int) -> str:
    """`XXXXX-XXXXX`: 50 bits of HMAC-SHA256(key, "receipt_id:version") in base32.

    The desk recomputes it from the stored receipt and version; a print whose receipt, version or
    code was altered does not match. Not a signature over the printed fields: the desk compares
    those with the stored version the code points to.
    """
    mac = hmac.new(key.encode(), f"{receipt_id}:{version}".encode(), hashlib.sha256).digest()
    text = base64.b32encode(mac).decode()[:10]
    return f"{text[:5]}-{text[5:]}"


def check_verification_code(key: str, receipt_id: str, version: int, code: str) -> bool:
    """Whether `code` (case, spaces and dashes ignored) is the one printed for that version."""
    wanted = verification_code(key, receipt_id, version).replace("-", "")
    given = "".join(c for c in code.upper() if c.isalnum())
    return hmac.compare_digest(wanted, given)


def _school_name(
    province: str | None, school: str | None, names: Mapping[tuple[str, str], str]
) -> str:
    if not province or not school:
        return ""
    name = names.get((province, school)) or _SPECIAL.get(school, "")
    return f"{name} ({_PROVINCES.get(province, province)})" if name else ""


def _yes(flag: Any) -> str:
    return "☒ Có" if flag else "☐ Không"


def _dd_mm_yy(iso: str | None) -> tuple[str, str]:
    if not iso:
        return "", ""
    born = date.fromisoformat(iso)
    return born.strftime("%d/%m/%Y"), born.strftime("%d%m%y")


def _identity(form: Mapping[str, Any]) -> list[Line]:
    shown, boxes = _dd_mm_yy(form.get("date_of_birth"))
    sex = {"female": "1 (Nữ)", "male": "0 (Nam)"}.get(form.get("sex") or "", "")
    return [
        Line("1", "Họ, chữ đệm và tên", "Full name", form.get("full_name") or ""),
        Line("1", "Giới (Nữ ghi 1, Nam ghi 0)", "Sex (female 1, male 0)", sex),
        Line("2", "Ngày, tháng và 2 số cuối của năm sinh", "Date of birth", shown, boxes),
        Line("3", "Nơi sinh", "Place of birth", form.get("birthplace") or ""),
        Line("3", "Dân tộc", "Ethnicity", form.get("ethnicity") or ""),
        Line("3", "Quốc tịch nước ngoài", "Foreign national", _yes(form.get("foreign_national"))),
        Line(
            "4",
            "Số Căn cước / Căn cước công dân / số định danh cá nhân",
            "Citizen ID number",
            form.get("national_id") or "",
            form.get("national_id") or "",
        ),
    ]


def _residence(form: Mapping[str, Any]) -> list[Line]:
    residence = form.get("residence") or {}
    codes = " ".join(
        f"{label} {residence.get(key) or '—'}"
        for label, key in (
            ("tỉnh", "province_code"),
            ("huyện", "district_code"),
            ("xã", "commune_code"),
        )
    )
    return [
        Line("5", "Nơi thường trú", "Permanent residence", residence.get("address") or ""),
        Line("5", "Mã tỉnh, huyện, xã", "Province, district, commune codes", codes),
        Line(
            "5",
            "Thường trú trên 18 tháng tại KV1 trong thời gian học THPT",
            "Over 18 months in KV1 during upper secondary",
            _yes(residence.get("kv1_over_18_months")),
        ),
        Line(
            "5",
            "Thường trú trên 18 tháng tại xã đặc biệt khó khăn",
            "Over 18 months in an especially-difficult commune",
            _yes(residence.get("difficult_commune_over_18_months")),
        ),
    ]


def _schooling(form: Mapping[str, Any], schools: Mapping[tuple[str, str], str]) -> list[Line]:
    lines = []
    for row in form.get("schools") or []:
        province, school = row.get("province_code"), row.get("school_code")
        lines.append(
            Line(
                "6",
                f"Nơi học lớp {row.get('grade')}",
                f"School, grade {row.get('grade')}",
                _school_name(province, school, schools),
                f"{province or ''}{school or ''}",
            )
        )
    if not lines:
        lines.append(Line("6", "Nơi học THPT", "Upper-secondary schools", "—"))
    lines.append(Line("6", "Tên lớp 12", "Grade-12 class", form.get("class_12") or "—"))
    return lines


def _status(form: Mapping[str, Any], schools: Mapping[tuple[str, str], str]) -> list[Line]:
    unit = form.get("registration_unit") or {}
    candidate_type = form.get("candidate_type") or ""
    year = form.get("diploma_year")
    purposes = "; ".join(_PURPOSES.get(p, p) for p in form.get("purposes") or [])
    return [
        Line("7", "Điện thoại", "Phone", form.get("phone") or ""),
        Line("7", "Email", "E-mail", form.get("email") or "—"),
        Line("8", "Địa chỉ liên hệ", "Contact address", form.get("contact_address") or "—"),
        Line(
            "9",
            "Chương trình, hình thức học",
            "Curriculum and track",
            f"{_CURRICULA.get(form.get('curriculum') or '', '')} · "
            f"{_TRACKS.get(form.get('study_track') or '', '')}",
        ),
        Line(
            "10",
            "Đối tượng thí sinh",
            "Candidate type",
            f"{candidate_type}) {_TYPES.get(candidate_type, '')}"
            + (f" · năm tốt nghiệp {year}" if year else ""),
        ),
        Line("11", "Mục đích dự thi", "Purposes", purposes),
        Line(
            "11",
            "Nơi đăng ký dự thi",
            "Registration unit",
            _school_name(unit.get("province_code"), unit.get("unit_code"), schools) or "—",
            f"{unit.get('province_code') or ''}{unit.get('unit_code') or ''}",
        ),
    ]


def _subjects(form: Mapping[str, Any]) -> list[Line]:
    electives = [_ELECTIVES.get(code, code) for code in form.get("electives") or []]
    language = form.get("foreign_language")
    compulsory = ", ".join(name for _, name in reference.COMPULSORY_SUBJECTS)
    return [
        Line("12", "Bài thi bắt buộc", "Compulsory papers", compulsory),
        Line("12", "Bài thi tự chọn", "Electives", ", ".join(electives) or "—"),
        Line(
            "12",
            "Ngoại ngữ",
            "Foreign language",
            f"{language} – {_LANGUAGES.get(language, '')}" if language else "—",
        ),
    ]


def _exemptions(form: Mapping[str, Any]) -> list[Line]:
    exemptions = form.get("exemptions") or {}
    language = "—"
    if exemptions.get("foreign_language_basis"):
        parts = [_BASES.get(exemptions["foreign_language_basis"], "")]
        if exemptions.get("foreign_language_certificate"):
            parts.append(_CERTIFICATES.get(exemptions["foreign_language_certificate"], ""))
        if exemptions.get("certificate_score"):
            parts.append(f"điểm {exemptions['certificate_score']}")
        if exemptions.get("certificate_expires_on"):
            parts.append(f"hạn đến {_dd_mm_yy(exemptions['certificate_expires_on'])[0]}")
        language = ", ".join(p for p in parts if p)
    level = exemptions.get("literature_certificate_level")
    reason = exemptions.get("all_papers_reason")
    return [
        Line("13", "Miễn thi Ngoại ngữ", "Foreign-language exemption", language),
        Line(
            "13",
            "Miễn thi Ngữ văn (người nước ngoài)",
            "Literature exemption (foreign nationals)",
            f"Chứng chỉ tiếng Việt bậc {level}" if level else "—",
        ),
        Line(
            "13",
            "Miễn thi tất cả các bài thi",
            "Exempt from every paper",
            _ALL_PAPERS.get(reason, "") if reason else "—",
        ),
    ]


def _priorities(form: Mapping[str, Any]) -> list[Line]:
    group = form.get("priority_group")
    grad = form.get("graduation_priority")
    encouragement = form.get("graduation_encouragement")
    return [
        Line(
            "15",
            "Diện ưu tiên, khuyến khích trong xét tốt nghiệp",
            "Graduation priority and encouragement",
            "; ".join(
                x
                for x in (
                    _GRAD_PRIORITY.get(grad, "") if grad else "",
                    _ENCOURAGEMENT.get(encouragement, "") if encouragement else "",
                )
                if x
            )
            or "—",
        ),
        Line(
            "16",
            "Đối tượng ưu tiên tuyển sinh",
            "Admission priority group",
            f"{group} – {_PRIORITY.get(group, '')}" if group else "—",
        ),
        Line(
            "16",
            "Tỉnh dự thi",
            "Exam province",
            _PROVINCES.get(form.get("exam_site_province") or "", ""),
        ),
        Line(
            "",
            "Ảnh (mã SHA-256)",
            "Photo (SHA-256)",
            (form.get("photo_sha256") or "")[:16] or "—",
        ),
    ]


def build(
    form: Mapping[str, Any],
    *,
    receipt_id: str,
    version: int,
    accepted_at: str,
    key: str,
    schools: Mapping[tuple[str, str], str],
    year: int,
) -> Phieu:
    """The printed form of one version (`form`: the canonical form the validator returned).

    Args:
        schools: school names by `(province_code, school_code)`.
        key: the deployment's secret, for the verification code.
        year: the exam year printed in the title.
    """
    unit = form.get("registration_unit") or {}
    doet = unit.get("province_code") or form.get("exam_site_province") or ""
    reserved: Sequence[Mapping[str, Any]] = form.get("reserved_scores") or []
    return Phieu(
        year=year,
        doet_name=_PROVINCES.get(doet, ""),
        doet_code=doet,
        receipt_id=receipt_id,
        version=version,
        accepted_at=accepted_at,
        verification_code=verification_code(key, receipt_id, version),
        photo_sha256=form.get("photo_sha256"),
        lines=tuple(
            [
                *_identity(form),
                *_residence(form),
                *_schooling(form, schools),
                *_status(form, schools),
                *_subjects(form),
                *_exemptions(form),
                *_priorities(form),
            ]
        ),
        reserved_scores=tuple(
            (
                _SUBJECTS.get(row.get("subject") or "", row.get("subject") or ""),
                f"{row['score']:g}" if row.get("score") is not None else "",
                str(row.get("exam_year") or ""),
            )
            for row in reserved
        ),
    )
