"""Decoding and re-encoding an uploaded photo with Pillow: the only module that imports it.

Owns turning untrusted bytes into the stored JPEG: only the JPEG and PNG decoders are tried, a
picture of more pixels than the limit is refused before it is decoded (Pillow's
`MAX_IMAGE_PIXELS`, its `DecompressionBombWarning` made an error), the EXIF orientation is applied
and then every piece of metadata (EXIF, XMP, ICC, comments, PNG text) is left behind, since only
the pixels are re-encoded. CPU-bound and blocking: callers run it in a worker thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.domain import photo

_ORIENTATION = 0x0112  # EXIF Orientation
_QUARTER_TURNS = frozenset({5, 6, 7, 8})  # shown rotated by 90° or 270°


@dataclass(frozen=True, slots=True)
class Normalised:
    """The stored form of a photo: baseline JPEG bytes and their size in pixels."""

    data: bytes
    width: int
    height: int
    source_format: str


def _bands(image: Image.Image) -> None:
    grey = image.convert("L").resize((48, 72))
    rows = max(1, round(72 * photo.LETTERBOX_SHARE))

    def stats(box: tuple[int, int, int, int]) -> tuple[int, int]:
        band = grey.crop(box)
        pixels = band.tobytes()  # mode L: one byte, one grey level per pixel
        low, high = min(pixels), max(pixels)
        return sum(pixels) // len(pixels), high - low

    top, bottom = stats((0, 0, 48, rows)), stats((0, 72 - rows, 48, 72))
    middle = stats((0, rows, 48, 72 - rows))[0]
    photo.check_letterbox(top, bottom, middle)


def normalise(data: bytes, max_pixels: int, reject_letterbox: bool = False) -> Normalised:
    """Decode `data` (JPEG or PNG), check it, and re-encode it as the stored JPEG.

    The output depends only on the input's pixels, so the same upload always gives the same bytes
    (and the same sha256): a retry stores nothing new.

    Raises:
        PhotoNotAnImage, PhotoBomb, PhotoLandscape, PhotoTooSmall; PhotoLetterboxed when
        `reject_letterbox` (the V9 heuristic).
    """
    Image.MAX_IMAGE_PIXELS = max_pixels  # process-wide; every caller passes the same setting
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=photo.FORMATS) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise photo.bomb(max_pixels)
                turned = opened.getexif().get(_ORIENTATION) in _QUARTER_TURNS
                shown = (height, width) if turned else (width, height)
                photo.check_dimensions(*shown)  # as displayed, before any pixel is decoded
                target = photo.stored_size(*shown)
                if opened.format == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT when that still
                    # covers the stored size: a 12 MP phone photo costs a quarter of the work.
                    opened.draft("RGB", target[::-1] if turned else target)
                opened.load()
                image = ImageOps.exif_transpose(opened)
                source_format = str(opened.format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise photo.bomb(max_pixels) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data surfaces as OSError/SyntaxError/ValueError from the decoders.
        raise photo.not_an_image() from exc
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if reject_letterbox:
        _bands(image)
    size = target
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A new image from the pixels alone: no exif=, icc_profile= or comment= is passed on.
    Image.frombytes("RGB", image.size, image.tobytes()).save(
        out, "JPEG", quality=photo.STORED_QUALITY, optimize=True
    )
    return Normalised(out.getvalue(), size[0], size[1], source_format)
