"""The registration unit's console pages: the review queue, confirm and return, the batch print,
and keying paper forms (one form, or a CSV/XLSX file with a progress bar).

Owns the `/support/review…` and `/support/keying…` routes. Sessions, CSRF and the frame are the
support console's (`engine.pages.support`); what each page does is
`engine.services.unit_review`'s and `engine.services.keying`'s, so the pages add no second path to
the audit log or the streams. It must not talk to Redis or SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.domain import paper_forms
from engine.errors import (
    ExamregError,
    InvalidRegistration,
    MalformedRequest,
    UnsupportedMediaType,
)
from engine.http.gate import admit
from engine.http.plumbing import read_body
from engine.pages import form_labels
from engine.pages.page import check_csrf, local_date, local_time, page_language
from engine.pages.support import _posted, _render, _signed_in, _viewed, console
from engine.pages.webform import Values, first
from engine.services import keying, unit_review
from engine.services.support_desk import Desk, candidate_id_of, invalid, parse_number

__all__ = ["routes"]

REVIEW: Final = "/support/review"
KEYING: Final = "/support/keying"
_MULTIPART_SLACK: Final = 64 * 1024  # boundaries, headers and the small fields beside the file


def _review_rows(groups: Mapping[str, list[dict[str, Any]]], lang: Any) -> dict[str, Any]:
    shown: dict[str, list[dict[str, Any]]] = {}
    for state, entries in groups.items():
        shown[state] = [
            {
                **entry,
                "date_of_birth": local_date(entry["date_of_birth"]),
                "review": {**entry["review"], "at": local_time(entry["review"]["at"])}
                if entry["review"]
                else None,
                "changes": form_labels.json_rows(entry.get("changes") or [], lang),
            }
            for entry in entries
        ]
    return shown


_DONE: Final = frozenset({"review_done_confirm", "review_done_return"})


def _done(request: Request) -> dict[str, str] | None:
    """What the redirect after a decision says was done (shown, never trusted for anything)."""
    query = request.query_params
    key, cid, version = query.get("done"), query.get("id", ""), query.get("version", "")
    if key not in _DONE or not cid.isdigit() or not version.isdigit():
        return None
    return {"key": key, "id": cid, "version": version}


async def _queue_page(
    request: Request, desk: Desk, session: Any, notice: str | None = None, status: int = 200
) -> Response:
    groups = await unit_review.queue(desk)
    return _render(
        request,
        "support/review.html",
        session,
        desk.staff,
        status,
        groups=_review_rows(groups, page_language(request)),
        notice=notice,
        done=_done(request) if notice is None else None,
        errors={},
    )


@console
async def review_page(request: Request) -> Response:
    desk, session = await _viewed(request)
    return await _queue_page(request, desk, session)


@console
async def review_decide(request: Request) -> Response:
    """Confirm or return one candidate's version; back to the queue with what was done."""
    desk, session, values = await _posted(request)
    candidate_id = candidate_id_of(request.path_params["candidate_id"])
    action = request.path_params["action"]
    version = parse_number({"version": first(values, "version")}, "version", None, 2**31 - 1)
    if version is None:
        raise invalid("version", "invalid_number", "Thiếu phiên bản.", "The version is missing.")
    lang = page_language(request)
    try:
        await unit_review.decide(
            desk, candidate_id, version, action, first(values, "reason") or None
        )
    except ExamregError as exc:
        if exc.status not in (409, 422):
            raise
        message = exc.errors[0] if exc.errors else None
        text = (
            (message.message_en if lang == "en" else message.message)
            if message
            else (exc.detail_en if lang == "en" else exc.detail)
        )
        return await _queue_page(request, desk, session, notice=text, status=exc.status)
    key = "review_done_confirm" if action == "confirm" else "review_done_return"
    return RedirectResponse(
        f"{REVIEW}?done={key}&id={candidate_id}&version={version}#c-{candidate_id}", 303
    )


@console
async def review_print(request: Request) -> Response:
    desk, session = await _viewed(request)
    forms = await unit_review.print_forms(desk)
    lang = page_language(request)
    printed = [
        {
            **entry,
            "fields": [
                {
                    "label": form_labels.field_label(path, lang),
                    "value": form_labels.value_text(path, value, lang),
                }
                for path, value in _leaves(entry["form"])
            ],
        }
        for entry in forms
    ]
    return _render(request, "support/review_print.html", session, desk.staff, forms=printed)


def _leaves(form: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf of a form as (dotted path, value), in the form's order: whatever it holds."""
    out: list[tuple[str, Any]] = []
    for key, value in form.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.extend(_leaves(value, path))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for index, item in enumerate(value):
                out.extend(_leaves(item, f"{path}.{index}"))
        else:
            out.append((path, value))
    return out


# -- keying --------------------------------------------------------------------------------------


def _keying_page(
    request: Request,
    desk: Desk,
    session: Any,
    *,
    values: Values | None = None,
    errors: Mapping[str, list[str]] | None = None,
    result: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    lang = page_language(request)
    settings = desk.svc.settings
    return _render(
        request,
        "support/keying.html",
        session,
        desk.staff,
        status,
        columns=[(c, form_labels.field_label(c, lang)) for c in paper_forms.COLUMNS],
        values=values or {},
        errors=dict(errors or {}),
        result=result,
        max_rows=settings.keying_max_rows,
        max_mb=round(settings.keying_max_bytes / 2**20, 1),
    )


@console
async def keying_page(request: Request) -> Response:
    desk, session = await _viewed(request)
    unit_review.unit_of(desk)
    return _keying_page(request, desk, session)


@console
async def keying_one(request: Request) -> Response:
    """One paper form typed into the console, column by column."""
    desk, session, values = await _posted(request)
    unit_review.unit_of(desk)
    cells = {c: first(values, c) for c in paper_forms.COLUMNS}
    body = paper_forms.row_body(cells)
    lang = page_language(request)
    try:
        result = await keying.key_one(desk, body)
    except InvalidRegistration as exc:
        grouped: dict[str, list[str]] = {}
        for error in exc.errors:
            grouped.setdefault(error.field, []).append(
                error.message_en if lang == "en" else error.message
            )
        return _keying_page(request, desk, session, values=values, errors=grouped, status=422)
    return _keying_page(request, desk, session, result=result)


async def _upload(request: Request) -> tuple[Desk, str, bytes, bool]:
    """The keyed file of a multipart post: the session first (an anonymous upload is never
    read), the body bounded by `EXAMREG_KEYING_MAX_BYTES`, then the CSRF token."""
    desk, session = await _signed_in(request)
    unit_review.unit_of(desk)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType()
    raw = await read_body(request, desk.svc.settings.keying_max_bytes + _MULTIPART_SLACK)

    async def stream() -> Any:
        yield raw

    parser = MultiPartParser(
        Headers(raw=[(b"content-type", content_type.encode("latin-1"))]),
        stream(),
        max_files=1,
        max_fields=10,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedRequest() from exc
    fields: Values = {name: [value] for name, value in form.multi_items() if isinstance(value, str)}
    try:
        check_csrf(session, fields)
        admit(request, shed=False)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("file", "file_required", "Chưa chọn tệp.", "No file was chosen.")
        data = await upload.read()
        return desk, upload.filename or "upload", data, first(fields, "good_only") == "1"
    finally:
        await form.close()


@console
async def keying_upload(request: Request) -> Response:
    desk, name, data, good_only = await _upload(request)
    job_id = await keying.start_file(desk, name, data, good_only)
    return RedirectResponse(f"{KEYING}/jobs/{job_id}", 303)


@console
async def keying_job_page(request: Request) -> Response:
    desk, session = await _viewed(request)
    job = await keying.job(desk, request.path_params["job_id"])
    lang = page_language(request)
    return _render(
        request,
        "support/keying_job.html",
        session,
        desk.staff,
        job=job,
        label=lambda path: form_labels.field_label(path, lang),
    )


@console
async def keying_job_progress(request: Request) -> Response:
    """The progress bar's poll (JSON): state, rows done, counts; never the rows' data."""
    desk, _ = await _viewed(request)
    job = await keying.job(desk, request.path_params["job_id"])
    return JSONResponse({k: v for k, v in job.items() if k != "errors"})


@console
async def keying_template(request: Request) -> Response:
    desk, _ = await _viewed(request)
    unit_review.unit_of(desk)
    return Response(
        paper_forms.template_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="examreg-keying-template.csv"'},
    )


routes = [
    Route(REVIEW, review_page, methods=["GET"], include_in_schema=False),
    Route(f"{REVIEW}/print", review_print, methods=["GET"], include_in_schema=False),
    Route(
        f"{REVIEW}/{{candidate_id}}/{{action:str}}",
        review_decide,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(KEYING, keying_page, methods=["GET"], include_in_schema=False),
    Route(KEYING, keying_one, methods=["POST"], include_in_schema=False),
    Route(f"{KEYING}/upload", keying_upload, methods=["POST"], include_in_schema=False),
    Route(f"{KEYING}/template.csv", keying_template, methods=["GET"], include_in_schema=False),
    Route(f"{KEYING}/jobs/{{job_id}}", keying_job_page, methods=["GET"], include_in_schema=False),
    Route(
        f"{KEYING}/jobs/{{job_id}}/progress",
        keying_job_progress,
        methods=["GET"],
        include_in_schema=False,
    ),
]
