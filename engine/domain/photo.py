"""The candidate photo's rules (domain.md §4.1 H3, §4.9 V9): size, orientation, the refusals.

Owns what a stored photo must be — JPEG or PNG in, at least 400×600 px, portrait — and the
Vietnamese/English message of every refusal (the codes and statuses are `engine.errors`'s
`InvalidPhoto` family). Pure: the imaging library that decodes and re-encodes lives in
`engine.adapters.imaging`.
"""

from __future__ import annotations

from typing import Final

from engine.errors import (
    InvalidPhoto,
    PhotoBomb,
    PhotoLandscape,
    PhotoLetterboxed,
    PhotoNotAnImage,
    PhotoTooLarge,
    PhotoTooSmall,
    PhotoUnsupportedType,
)

MIN_WIDTH: Final = 400  # [C] S15: at least 400×600 px
MIN_HEIGHT: Final = 600
# What is stored: the photo scaled down to fit 800×1200 (twice the minimum, enough for a 4×6 cm
# print at 500 dpi), re-encoded as baseline JPEG without any metadata.
STORED_MAX: Final = (800, 1200)
STORED_QUALITY: Final = 88
FORMATS: Final = ("JPEG", "PNG")
MEDIA_TYPES: Final = ("image/jpeg", "image/png")


def too_large(limit: int) -> InvalidPhoto:
    mb = f"{limit / 2**20:g}"
    return PhotoTooLarge(
        f"Tệp ảnh quá lớn (tối đa {mb} MB). Vui lòng chọn ảnh nhỏ hơn.",
        f"The photo file is too large (at most {mb} MB).",
    )


def unsupported_type() -> InvalidPhoto:
    return PhotoUnsupportedType(
        "Chỉ nhận ảnh JPEG hoặc PNG (Content-Type image/jpeg hoặc image/png).",
        "Only JPEG or PNG photos are accepted (Content-Type image/jpeg or image/png).",
    )


def not_an_image() -> InvalidPhoto:
    return PhotoNotAnImage(
        "Tệp này không phải ảnh JPEG hoặc PNG đọc được. Vui lòng chọn ảnh khác.",
        "This file is not a readable JPEG or PNG image; choose another.",
    )


def bomb(limit: int) -> InvalidPhoto:
    return PhotoBomb(
        f"Ảnh có quá nhiều điểm ảnh (tối đa {limit:,} điểm ảnh). "
        "Vui lòng chụp lại với độ phân giải thấp hơn.",
        f"The image has more than {limit:,} pixels (decompression bomb refused).",
    )


def check_dimensions(width: int, height: int) -> None:
    """Refuse a photo smaller than 400×600 or not portrait (as displayed, EXIF rotation applied).

    Raises:
        PhotoLandscape: not taller than wide.
        PhotoTooSmall: narrower than 400 or lower than 600 pixels.
    """
    if height <= width:
        raise PhotoLandscape(
            f"Ảnh phải là ảnh dọc (chiều cao lớn hơn chiều rộng), như ảnh thẻ 4×6; ảnh này "
            f"{width}×{height}. Vui lòng chụp lại.",
            f"The photo must be portrait (taller than wide), like a 4×6 ID photo; this one is "
            f"{width}×{height}.",
        )
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise PhotoTooSmall(
            f"Ảnh quá nhỏ ({width}×{height} điểm ảnh): cần ít nhất {MIN_WIDTH}×{MIN_HEIGHT}. "
            "Vui lòng chụp lại.",
            f"The photo is too small ({width}×{height} px): at least {MIN_WIDTH}×{MIN_HEIGHT}.",
        )


def stored_size(width: int, height: int) -> tuple[int, int]:
    """The size the photo is stored at: scaled down (never up) to fit `STORED_MAX`."""
    scale = min(1.0, STORED_MAX[0] / width, STORED_MAX[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


LETTERBOX_SHARE: Final = 0.08  # a band this share of the height, above and below, is letterboxing
LETTERBOX_SPREAD: Final = 4  # grey levels: a band flatter than this is one uniform colour


def check_letterbox(top: tuple[int, int], bottom: tuple[int, int], middle_mean: int) -> None:
    """V9 (domain.md §4.9, a heuristic [I], on only with EXAMREG_PHOTO_REJECT_LETTERBOX): refuse
    a picture whose top and bottom bands are each one flat colour unlike its middle, as a
    screenshot of a photo shown with bars is.

    Args:
        top, bottom: (mean, spread = max - min) of the grey levels of each band.
        middle_mean: the mean grey level of the rest.

    Raises:
        PhotoLetterboxed: both bands flat and at least 24 grey levels from the middle.
    """
    flat = top[1] <= LETTERBOX_SPREAD and bottom[1] <= LETTERBOX_SPREAD
    if flat and min(abs(top[0] - middle_mean), abs(bottom[0] - middle_mean)) >= 24:
        raise PhotoLetterboxed(
            "Ảnh có dải màu đồng nhất ở trên và dưới, như ảnh chụp màn hình. "
            "Vui lòng tải ảnh gốc, không có viền.",
            "The photo has flat bands above and below, like a screenshot; upload the original.",
        )
