"""Photo upload, submission with its hash, and the printed Phiếu, on real PostgreSQL and Valkey.

Through the JSON API and the web form: the photo is stored once under its sha256 (a retry, or
the same photo again, writes nothing new), bad images are refused with their code, the stream
entry carries the hash and never the bytes, and the print page and its PDF show the version's
fields, the photo and a verification code the desk can check.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest
from PIL import Image

from engine.adapters import imaging, streams
from engine.domain import phieu
from engine.pages import webform
from engine.services import printouts
from tests.conftest import Harness
from tests.integration.test_web import logged_in
from tests.support import drain, form_for, hidden

pytestmark = pytest.mark.anyio


def portrait(
    width: int = 600, height: int = 900, colour: tuple[int, int, int] = (30, 90, 160)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=92)
    return out.getvalue()


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "photos").rglob("*.jpg"))


async def upload(
    harness: Harness, auth: dict[str, str], data: bytes, media: str = "image/jpeg"
) -> Any:
    return await harness.client.post(
        "/api/v1/me/photo", content=data, headers={**auth, "Content-Type": media}
    )


async def test_a_photo_is_stored_once_under_its_hash_and_the_form_carries_only_the_hash(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[0]
    auth = await harness.login(candidate)
    first = await upload(harness, auth, portrait())
    assert first.status_code == 201, first.text
    digest = first.json()["photo_sha256"]
    files = stored_files(harness.settings.data_dir)
    assert [f.name for f in files] == [f"{digest}.jpg"]
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == digest
    again = await upload(harness, auth, portrait())  # a retry of the same upload
    assert again.status_code == 200 and again.json()["photo_sha256"] == digest
    assert stored_files(harness.settings.data_dir) == files, "no second copy"

    body = form_for(candidate, photo_sha256=digest, class_12="12A3")
    for attempt in range(2):  # the same Idempotency-Key twice: one version, one photo
        put = await harness.client.put(
            "/api/v1/me/registration", json=body, headers={**auth, "Idempotency-Key": "photo-1"}
        )
        assert put.status_code == 202, put.text
        assert (put.headers.get("Idempotent-Replayed") == "true") == (attempt == 1)
    assert stored_files(harness.settings.data_dir) == files
    shard = harness.settings.shard_of(candidate["candidate_id"])
    entries = await aredis.xrange(streams.stream_key(shard))
    raw = b"".join(
        (k if isinstance(k, bytes) else k.encode()) + (v if isinstance(v, bytes) else v.encode())
        for _, fields in entries
        for k, v in fields.items()
    )
    assert digest.encode() in raw, "the stream entry carries the hash"
    assert files[0].read_bytes()[:64] not in raw and len(raw) < 8192, "and never the bytes"
    await drain(harness.settings, pool, aredis)
    stored = await pool.fetchval(
        "SELECT form->>'photo_sha256' FROM registrations WHERE candidate_id = $1",
        candidate["candidate_id"],
    )
    assert stored == digest


@pytest.mark.parametrize(
    ("data", "media", "status", "code"),
    [
        (b"plain text, no picture", "image/jpeg", 422, "photo_not_an_image"),
        (b"GIF89a", "image/gif", 415, "photo_unsupported_type"),
        ("small", "image/jpeg", 422, "photo_too_small"),
        ("landscape", "image/jpeg", 422, "photo_landscape"),
    ],
)
async def test_bad_photos_are_refused_with_their_code_and_nothing_is_stored(
    harness: Harness, roster: list[dict[str, Any]], data: Any, media: str, status: int, code: str
) -> None:
    auth = await harness.login(roster[1])
    payload = {"small": portrait(300, 450), "landscape": portrait(900, 600)}.get(data, data)
    answer = await upload(harness, auth, payload, media)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code
    english = await upload(harness, {**auth, "Accept-Language": "en"}, payload, media)
    assert english.json()["detail"] != answer.json()["detail"], "Vietnamese first, English on ask"
    assert stored_files(harness.settings.data_dir) == []


async def test_a_photo_over_the_size_limit_is_413(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    auth = await harness.login(roster[1])
    big = b"\xff\xd8" + b"\0" * (harness.settings.photo_max_bytes + 10)
    answer = await upload(harness, auth, big)
    assert answer.status_code == 413 and answer.json()["code"] == "photo_too_large"


async def test_a_form_naming_a_photo_never_uploaded_is_refused(
    harness: Harness, roster: list[dict[str, Any]]
) -> None:
    auth = await harness.login(roster[2])
    body = form_for(roster[2], photo_sha256="0" * 64)
    put = await harness.client.put(
        "/api/v1/me/registration", json=body, headers={**auth, "Idempotency-Key": "ghost"}
    )
    assert put.status_code == 422
    assert [(e["field"], e["code"]) for e in put.json()["errors"]] == [
        ("photo_sha256", "unknown_photo")
    ]


async def test_the_web_form_uploads_the_photo_keeps_it_on_error_and_prints_the_phieu(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool, aredis: Any
) -> None:
    candidate = roster[3]
    csrf = await logged_in(harness, pool, candidate)

    values = webform.from_form(form_for(candidate, contact_address="Số 1 Tràng Tiền, Hà Nội"))
    broken = {**values, "phone": ["12"], "csrf_token": [csrf], "idempotency_key": ["web-1"]}
    page = await harness.client.post(
        "/registration", data=broken, files={"photo": ("me.jpg", portrait(), "image/jpeg")}
    )
    assert page.status_code == 422, page.text[:500]
    digest = hidden(page.text, "photo_sha256")
    assert len(digest) == 64 and stored_files(harness.settings.data_dir)
    assert "Số 1 Tràng Tiền, Hà Nội" in page.text, "typed values kept"
    # Fixed and sent again without choosing the file again: the hash rides in the form.
    fixed = {**values, "csrf_token": [csrf], "idempotency_key": ["web-1"], "photo_sha256": [digest]}
    pairs = [(k, v) for k, items in fixed.items() for v in items]
    sent = await harness.client.post(
        "/registration",
        content=urlencode(pairs).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert sent.status_code == 303, sent.text[:800]
    await drain(harness.settings, pool, aredis)

    printed = await harness.client.get("/registration/print")
    assert printed.status_code == 200
    text = printed.text
    for expected in (
        "PHIẾU ĐĂNG KÝ DỰ THI",
        candidate["full_name"],
        "Số 1 Tràng Tiền, Hà Nội",
        f"/registration/photo/{digest}",
        "XÁC NHẬN CỦA ĐƠN VỊ ĐĂNG KÝ DỰ THI",
        "Chữ ký của thí sinh",
    ):
        assert expected in text, expected
    receipt = hidden_text(text, "phieu-receipt")
    version = int(hidden_text(text, "phieu-version"))
    code = hidden_text(text, "phieu-code")
    assert printouts.verify(harness.services, receipt, version, code)
    assert not printouts.verify(harness.services, receipt, version + 1, code)
    assert code == phieu.verification_code("test-secret", receipt, version)

    photo = await harness.client.get(f"/registration/photo/{digest}")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    other = await harness.client.get("/registration/photo/" + "1" * 64)
    assert other.status_code == 404

    pdf = await harness.client.get("/registration/print.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"/Subtype /Image" in pdf.content
    assert 10_000 < len(pdf.content) < 400_000


def hidden_text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, element_id
    return found.group(1)


async def test_printing_without_a_registration_says_so(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    await logged_in(harness, pool, roster[4])
    page = await harness.client.get("/registration/print")
    assert page.status_code == 200 and 'id="print-none"' in page.text
    assert (await harness.client.get("/registration/print.pdf")).status_code == 404


async def test_decoding_runs_in_the_photo_pool_not_on_the_event_loop(
    harness: Harness, roster: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = imaging.normalise

    def recording(*args: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(imaging, "normalise", recording)
    auth = await harness.login(roster[6])
    answer = await upload(harness, auth, portrait(1200, 1800))
    assert answer.status_code == 201
    assert len(seen) == 1 and seen[0].startswith("examreg-photo"), seen
    assert seen[0] != threading.main_thread().name


async def test_the_form_page_shows_a_refused_photo_next_to_its_input_and_keeps_the_rest(
    harness: Harness, roster: list[dict[str, Any]], pool: asyncpg.Pool
) -> None:
    candidate = roster[7]
    csrf = await logged_in(harness, pool, candidate)
    values = {**webform.from_form(form_for(candidate)), "csrf_token": [csrf]}
    page = await harness.client.post(
        "/registration",
        data={**values, "idempotency_key": ["web-bad-photo"]},
        files={"photo": ("notes.jpg", b"these are not pixels", "image/jpeg")},
    )
    assert page.status_code == 422
    assert 'id="f-photo_sha256-error"' in page.text and "JPEG hoặc PNG" in page.text
    assert hidden(page.text, "photo_sha256") == "" and stored_files(harness.settings.data_dir) == []
    assert candidate["full_name"] in page.text
    broken = await harness.client.post(
        "/registration",
        content=b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        b"\xff\xfe\r\n--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 400
