"""The printable Phiếu of a candidate's newest version: the print page's data, the PDF, the code.

Owns assembling `engine.domain.phieu.Phieu` for a stored (or queued) version — the school names
from the reference data, the exam year from the window, the verification code under the
deployment's secret — and rendering its PDF with the photo off the event loop. The support desk
checks a printed code with `verify`. It must not read a request.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.adapters import printing
from engine.domain import phieu
from engine.services import candidates
from engine.services.container import Services
from engine.settings import VIETNAM

_NAMES: dict[str, dict[tuple[str, str], str]] = {}


def school_names(svc: Services) -> dict[tuple[str, str], str]:
    """School names by (province, school), derived once per version of the reference data."""
    names = _NAMES.get(svc.reference_etag)
    if names is None:
        schools = orjson.loads(svc.reference_body)["schools"]
        names = {(s["province_code"], s["school_code"]): s["name"] for s in schools}
        _NAMES.clear()
        _NAMES[svc.reference_etag] = names
    return names


def _local(moment: Any) -> str:
    if not moment:
        return ""
    value = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def exam_year(svc: Services) -> int:
    closes = svc.settings.window.closes_at
    return (closes or datetime.now(UTC)).astimezone(VIETNAM).year


def build(
    svc: Services, form: dict[str, Any], receipt_id: str, version: int, accepted_at: Any
) -> phieu.Phieu:
    return phieu.build(
        form,
        receipt_id=receipt_id,
        version=version,
        accepted_at=_local(accepted_at),
        key=svc.settings.secret_key,
        schools=school_names(svc),
        year=exam_year(svc),
    )


async def current(svc: Services, candidate_id: int) -> phieu.Phieu | None:
    """The Phiếu of the candidate's newest accepted version (queued or persisted), or None."""
    registration = await candidates.newest_registration(svc, candidate_id)
    if registration is None:
        return None
    return build(
        svc,
        registration["form"],
        registration["receipt_id"],
        registration["version"],
        registration["accepted_at"],
    )


async def pdf(svc: Services, printed: phieu.Phieu) -> bytes:
    """The PDF, with the photo from the store; drawn in the photo pool, not on the event loop."""
    photo = await svc.photos.get(printed.photo_sha256) if printed.photo_sha256 else None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(svc.photo_pool, printing.render_pdf, printed, photo)


def verify(svc: Services, receipt_id: str, version: int, code: str) -> bool:
    """Whether a printed verification code belongs to that receipt and version."""
    return phieu.check_verification_code(svc.settings.secret_key, receipt_id, version, code)
