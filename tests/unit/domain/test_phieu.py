"""Unit tests of the printed Phiếu (`engine.domain.phieu`): every field of a full form is on it,
in item order, and the verification code tells the printed receipt and version apart."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from engine.domain import phieu, reference
from engine.domain.registration import CandidateContext, Catalog, validate_registration

NAMES = {(s.province_code, s.school_code): s.name for s in reference.schools()}
RECEIPT = "0123456789ABCDEF0123"


def full_form() -> dict[str, object]:
    body = {
        "full_name": "Lò Thị Hoa",
        "date_of_birth": "2005-07-09",
        "sex": "female",
        "national_id": "011305012345",
        "ethnicity": "Thái",
        "birthplace": "Điện Biên",
        "residence": {
            "address": "Bản Noong Bua, phường Noong Bua",
            "province_code": "62",
            "commune_code": "05",
            "difficult_commune_over_18_months": True,
        },
        "phone": "0912345678",
        "email": "hoa@example.vn",
        "contact_address": "Số 3 đường Võ Nguyên Giáp, Điện Biên Phủ",
        "candidate_type": "c",
        "diploma_year": 2023,
        "purposes": ["admission"],
        "electives": ["SU", "NN"],
        "foreign_language": "N3",
        "exemptions": {"foreign_language_certificate": "DELF_B1", "certificate_score": "B1"},
        "reserved_scores": [{"subject": "VAN", "score": "7.25", "exam_year": 2024}],
        "graduation_priority": "P050",
        "priority_group": "01",
        "exam_site_province": "62",
        "registration_unit": {"province_code": "62", "unit_code": "001"},
        "photo_sha256": "c" * 64,
    }
    return validate_registration(
        body, CandidateContext("011305012345", date(2026, 4, 1)), Catalog.from_reference()
    )


def test_every_item_of_a_full_form_is_printed_in_order() -> None:
    printed = phieu.build(
        full_form(), receipt_id=RECEIPT, version=3, accepted_at="x", key="k", schools=NAMES,
        year=2026,
    )  # fmt: skip
    numbers = [int(line.number) for line in printed.lines if line.number]
    assert numbers == sorted(numbers) and set(range(1, 17)) - {14} <= set(numbers)
    text = " ".join(f"{line.label} {line.value} {line.boxes}" for line in printed.lines)
    for expected in (
        "LÒ THỊ HOA", "090705", "Thái", "011305012345", "Bản Noong Bua", "xã 05",
        "Số 3 đường Võ Nguyên Giáp", "năm tốt nghiệp 2023", "Lịch sử, Ngoại ngữ", "N3",
        "DELF B1", "điểm B1", "Diện ưu tiên cộng 0,5 điểm", "01 –", "Điện Biên", "62001",
    ):  # fmt: skip
        assert expected in text, expected
    assert printed.reserved_scores == (("Ngữ văn", "7.25", "2024"),)
    assert printed.doet_code == "62" and printed.photo_sha256 == "c" * 64


@given(st.integers(1, 10_000), st.text(alphabet="0123456789ABCDEF", min_size=20, max_size=20))
def test_the_code_verifies_its_own_receipt_and_version_only(version: int, receipt: str) -> None:
    code = phieu.verification_code("secret", receipt, version)
    assert phieu.check_verification_code("secret", receipt, version, code.lower().replace("-", " "))
    assert not phieu.check_verification_code("secret", receipt, version + 1, code)
    assert not phieu.check_verification_code("other", receipt, version, code)
