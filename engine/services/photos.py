"""The candidate's photo: upload, decode and re-encode off the event loop, content-addressed store.

Owns the photo flow the JSON endpoint and the web form both call: the size limit, the imaging
work in the process's bounded photo thread pool (never on the event loop), the sha256 of the
re-encoded bytes, and the store (`engine.adapters.photos`), which writes nothing for a hash it
already has. The registration then carries only the hash (`photo_sha256`); the bytes never enter
a stream entry. It must not read a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from engine.adapters import imaging, metrics
from engine.domain import photo
from engine.errors import InvalidPhoto, Overloaded
from engine.services.container import Services


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    sha256: str
    width: int
    height: int
    bytes: int
    stored: bool  # False: the same photo was already stored (a retry): nothing written
    cpu_ms: float

    def to_json(self) -> dict[str, object]:
        return {
            "photo_sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "media_type": "image/jpeg",
        }


def _normalise_timed(
    data: bytes, max_pixels: int, letterbox: bool
) -> tuple[imaging.Normalised, float]:
    start = time.thread_time()
    result = imaging.normalise(data, max_pixels, letterbox)
    return result, time.thread_time() - start


async def ingest(svc: Services, data: bytes, media_type: str | None) -> StoredPhoto:
    """Check, re-encode and store one uploaded photo.

    Args:
        data: the uploaded bytes (already within the size limit when read by the HTTP layer).
        media_type: the declared type; None when the web form's part did not say (the decoder
            then decides).

    Raises:
        InvalidPhoto: a subclass with the reason's code (too large, unsupported type, not an
            image, too small, landscape, bomb).
        Overloaded: every photo worker is busy and the queue is full (503 + Retry-After).
    """
    try:
        if media_type is not None and media_type not in photo.MEDIA_TYPES:
            raise photo.unsupported_type()
        if len(data) > svc.settings.photo_max_bytes:
            raise photo.too_large(svc.settings.photo_max_bytes)
        if svc.photo_queue.locked():
            raise Overloaded(retry_after=svc.settings.retry_after_seconds)
        async with svc.photo_queue:
            loop = asyncio.get_running_loop()
            normalised, cpu = await loop.run_in_executor(
                svc.photo_pool,
                _normalise_timed,
                data,
                svc.settings.photo_max_pixels,
                svc.settings.photo_reject_letterbox,
            )
    except InvalidPhoto as exc:
        metrics.PHOTOS.labels(exc.code).inc()
        raise
    digest = hashlib.sha256(normalised.data).hexdigest()
    stored = await svc.photos.put(digest, normalised.data)
    metrics.PHOTO_CPU_SECONDS.observe(cpu)
    metrics.PHOTOS.labels("stored" if stored else "existing").inc()
    if stored:
        metrics.PHOTO_STORED_BYTES.inc(len(normalised.data))
    return StoredPhoto(
        digest, normalised.width, normalised.height, len(normalised.data), stored, cpu * 1000
    )
