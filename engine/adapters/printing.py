"""The printed Phiếu as a PDF: fpdf2 with an embedded DejaVu Sans Condensed (Vietnamese marks).

Owns drawing `engine.domain.phieu.Phieu` on one A4 page: the national header, the DOET and its
code, the number (receipt) and version, the photo in its 4×6 cm box, items 1–16 with their codes
in boxes, the reserved-score table, the pledge, the verification code and the two signature
blanks. fpdf2 is pure Python and embeds only the glyphs used (a subset), so a page is about
30–60 KB; the fonts ship in `engine/adapters/fonts/` (Debian's fonts-dejavu-core 2.37, Bitstream
Vera licence, beside them). CPU-bound: callers run it in a worker thread.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final

from fpdf import FPDF

from engine.domain.phieu import Line, Phieu

FONTS: Final = Path(__file__).with_name("fonts")
_MARGIN: Final = 12.0
_LABEL_W: Final = 78.0
_LH: Final = 4.4  # line height, mm


def _pdf() -> Any:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=6)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSansCondensed.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSansCondensed-Bold.ttf"))
    pdf.set_creator("examreg")
    pdf.set_title("Phiếu đăng ký dự thi")
    pdf.add_page()
    return pdf


def _header(pdf: Any, phieu: Phieu, photo: bytes | None) -> None:
    width = pdf.epw
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(width / 2, 5, "BỘ GIÁO DỤC VÀ ĐÀO TẠO", align="C")
    pdf.cell(
        width / 2, 5, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(width / 2, 5, f"Sở GDĐT: {phieu.doet_name}", align="C")
    pdf.cell(width / 2, 5, "Độc lập – Tự do – Hạnh phúc", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(width / 2, 5, f"Mã Sở: {phieu.doet_code}", align="C", new_x="LMARGIN", new_y="NEXT")
    top = pdf.get_y() + 2
    box_x = pdf.l_margin + width - 30
    pdf.rect(box_x, top, 30, 40)  # the 4×6 photo box, drawn 3×4 cm in proportion
    if photo:
        pdf.image(io.BytesIO(photo), x=box_x + 0.5, y=top + 0.5, w=29, h=39)
    else:
        pdf.set_xy(box_x, top + 16)
        pdf.set_font("DejaVu", "", 8)
        pdf.multi_cell(30, 4, "Ảnh 4×6", align="C")
    pdf.set_xy(pdf.l_margin, top + 4)
    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(
        width - 34, 7, f"PHIẾU ĐĂNG KÝ DỰ THI\nTỐT NGHIỆP THPT NĂM {phieu.year}", align="C"
    )
    pdf.set_font("DejaVu", "", 9)
    pdf.set_x(pdf.l_margin)
    pdf.multi_cell(
        width - 34,
        5,
        f"Số phiếu (mã biên nhận): {phieu.receipt_id}\nPhiên bản: {phieu.version} · "
        f"Tiếp nhận lúc: {phieu.accepted_at}\nMã xác thực: {phieu.verification_code}",
        align="C",
    )
    pdf.set_y(max(pdf.get_y(), top + 42))


def _height(pdf: Any, width: float, text: str) -> float:
    lines = pdf.multi_cell(width, _LH, text, dry_run=True, output="LINES")
    return _LH * max(1, len(lines))


def _line(pdf: Any, line: Line) -> None:
    label = f"{line.number}. {line.label}" if line.number else line.label
    value = line.value or "—"
    if line.boxes:
        value = f"{value}   [{' '.join(line.boxes)}]"
    value_w = pdf.epw - _LABEL_W
    pdf.set_font("DejaVu", "B", 8.5)
    label_h = _height(pdf, _LABEL_W, label)
    pdf.set_font("DejaVu", "", 8.5)
    height = max(label_h, _height(pdf, value_w, value))
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()
    y = pdf.get_y()
    pdf.set_font("DejaVu", "B", 8.5)
    pdf.multi_cell(_LABEL_W, _LH, label, align="L")
    pdf.set_xy(pdf.l_margin + _LABEL_W, y)
    pdf.set_font("DejaVu", "", 8.5)
    pdf.multi_cell(value_w, _LH, value, align="L")
    pdf.set_xy(pdf.l_margin, y + height)


def _reserved(pdf: Any, phieu: Phieu) -> None:
    pdf.set_font("DejaVu", "B", 8.5)
    pdf.cell(_LABEL_W, _LH, "14. Điểm bảo lưu (thí sinh tự do)")
    pdf.set_font("DejaVu", "", 8.5)
    if not phieu.reserved_scores:
        pdf.cell(0, _LH, "—", new_x="LMARGIN", new_y="NEXT")
        return
    pdf.ln(_LH)
    with pdf.table(col_widths=(60, 30, 30), width=120, text_align="LEFT") as table:
        table.row(("Bài thi / môn thi", "Điểm", "Năm thi"))
        for row in phieu.reserved_scores:
            table.row(row)


def _signatures(pdf: Any, phieu: Phieu) -> None:
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 5, phieu.pledge[0], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    half = pdf.epw / 2
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(half, 5, "XÁC NHẬN CỦA ĐƠN VỊ ĐĂNG KÝ DỰ THI", align="C")
    pdf.cell(half, 5, "Ngày …… tháng …… năm ……", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    pdf.cell(half, 4, "(Ký, ghi rõ họ tên và đóng dấu)", align="C")
    pdf.cell(
        half, 4, "Chữ ký của thí sinh (ghi rõ họ tên)", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    top = pdf.get_y() + 1
    pdf.rect(pdf.l_margin + 4, top, half - 8, 20)
    pdf.rect(pdf.l_margin + half + 4, top, half - 8, 20)
    pdf.set_y(top + 21)
    pdf.set_font("DejaVu", "", 7)
    pdf.multi_cell(
        0,
        4,
        f"Mã xác thực {phieu.verification_code} của phiếu {phieu.receipt_id}, phiên bản "
        f"{phieu.version}: bộ phận hỗ trợ thí sinh đối chiếu được với dữ liệu đã lưu.",
    )


def render_pdf(phieu: Phieu, photo: bytes | None) -> bytes:
    """The Phiếu as PDF bytes (A4; a second page only if a long form overflows the first)."""
    pdf = _pdf()
    _header(pdf, phieu, photo)
    for line in phieu.lines_before_reserved:
        _line(pdf, line)
    _reserved(pdf, phieu)
    for line in phieu.lines_after_reserved:
        _line(pdf, line)
    _signatures(pdf, phieu)
    return bytes(pdf.output())
