"""Candidate web pages: server-rendered HTML over the very flows of the JSON API.

Owns the page routes: login, the forced first-login password change, the registration form, the
receipt, the status page with the version history, the overload retry page and logout. Logins go
through `engine.http.plumbing.authenticate` and submissions through `candidates.submit`, so the
pages add no second path to the session store or the streams. Rendering, sessions and CSRF checks
are `engine.pages.page`'s; the form's fields are `engine.pages.webform`'s. All JS and CSS are static
files (no inline script or style), so the CSP stays strict. It must not talk to Redis or SQL except
through `engine.adapters.streams` and `engine.adapters.store`."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.adapters import store
from engine.adapters.sessions import Session
from engine.errors import (
    ExamregError,
    IdempotencyKeyReused,
    InvalidPhoto,
    InvalidRegistration,
    NotFound,
    Overloaded,
    RateLimited,
    Unavailable,
    WindowClosed,
)
from engine.http.gate import admit
from engine.http.responses import services
from engine.pages import form_labels, i18n, webform
from engine.pages.accounts import AccountPages, LoginWords, SignedIn
from engine.pages.page import (
    INFRASTRUCTURE,
    STATIC_DIR,
    Redirect,
    check_csrf,
    choices,
    csrf_of,
    detail,
    expired,
    is_open,
    local_date,
    local_time,
    page,
    page_language,
    read_form,
    read_form_with_files,
    render,
    require,
    session_or_none,
    window_info,
)
from engine.pages.webform import Values, first
from engine.services import candidates, photos, printouts, unit_review
from engine.services.container import Services

__all__ = ["STATIC_DIR", "routes"]

LOGIN_CSRF_COOKIE: Final = "examreg_login_csrf"


# -- what the candidate has submitted ---------------------------------------------------------


async def current_registration(svc: Services, candidate_id: int) -> dict[str, Any] | None:
    """The newest accepted version (`candidates.newest_registration`), times as local time."""
    registration = await candidates.newest_registration(svc, candidate_id)
    if registration is None:
        return None
    return {
        **registration,
        "accepted_at": local_time(registration["accepted_at"]),
        "persisted_at": local_time(registration["persisted_at"]),
    }


async def receipt_info(svc: Services, candidate_id: int, receipt_id: str) -> dict[str, Any] | None:
    """One of the candidate's receipts (`candidates.receipt_status`), times as local time."""
    receipt = await candidates.receipt_status(svc, candidate_id, receipt_id)
    if receipt is None:
        return None
    return {
        **receipt,
        "phase": receipt["phase"] or "",
        "accepted_at": local_time(receipt["accepted_at"]) if receipt["accepted_at"] else "",
        "persisted_at": local_time(receipt["persisted_at"]) if receipt["persisted_at"] else "",
    }


# -- login, logout, password ---------------------------------------------------------------------


@page
async def index(request: Request) -> Response:
    return RedirectResponse("/status", 303)


async def _signed_in(request: Request) -> SignedIn:
    svc, session, profile = await require(request, forced_ok=True)
    return SignedIn(
        svc,
        session,
        bool(profile["must_change_password"]),
        {"window": window_info(svc, session, profile)},
    )


accounts = AccountPages(
    kind="candidate",
    wrap=page,
    layout="base.html",
    home="/status",
    after_change="/registration",
    login_path="/login",
    logout_path="/logout",
    change_path="/password",
    login_cookie=LOGIN_CSRF_COOKIE,
    login_field="login",
    words=LoginWords(
        title="login_title",
        intro="login_intro",
        label="login_id",
        hint="login_id_hint",
        failed=None,
        input={"inputmode": "numeric", "pattern": "[0-9]{12}", "maxlength": "12"},
    ),
    forced_notice="password_intro_forced",
    normalise=str.strip,
    lookup=candidates.candidate_account,
    change_password=candidates.change_password,
    signed_in=_signed_in,
)


# -- the registration form ---------------------------------------------------------------------


def _defaults(profile: Mapping[str, Any]) -> Values:
    """A first form: identity from the roster, the roster's school for grades 10 to 12."""
    school = profile["school"]
    values: Values = {
        name: [str(profile[name])]
        for name in ("full_name", "date_of_birth", "sex", "national_id", "candidate_type")
    }
    values["residence.province_code"] = [school["province_code"]]
    values["exam_site_province"] = [school["province_code"]]
    if profile["candidate_type"] == "a":
        for row in range(webform.SCHOOL_ROWS):
            values[f"schools.{row}.province_code"] = [school["province_code"]]
            values[f"schools.{row}.school_code"] = [school["school_code"]]
    return values


def _label(t: Callable[..., Markup], name: str) -> str:
    """A human name for an input, for the error summary at the top of the form."""
    parts = name.split(".")
    if parts[0] == "reserved_scores" and len(parts) >= 2 and parts[1].isdigit():
        row = t("reserved_row", row=int(parts[1]) + 1)
        field = {"subject": "reserved_subject", "score": "reserved_score"}.get(
            parts[-1], "reserved_year"
        )
        return f"{t('reserved_scores')} – {row}" + (f" – {t(field)}" if len(parts) == 3 else "")
    if parts[0] == "schools" and len(parts) == 3 and parts[1].isdigit():
        grade = t("grade", grade=webform.FIRST_GRADE + int(parts[1]))
        field = t("school_province") if parts[2] == "province_code" else t("school")
        return f"{grade} – {field}"
    key = {
        "schools": "section_schools",
        "residence": "section_residence",
        "exemptions": "section_exemptions",
        "registration_unit": "section_unit",
    }.get(name, name)
    return str(t(key)) if key in i18n.CATALOG else name


def _form_page(
    request: Request,
    svc: Services,
    session: Session,
    values: Values,
    *,
    status: int = 200,
    errors: Mapping[str, Sequence[str]] | None = None,
    key: str | None = None,
    notice: str = "",
    answered: bool = True,
    shown_photo: str = "",
) -> Response:
    """The form; `answered` when it is the server's answer to a POST (app.js forgets its copy)."""
    # The national ID is the login: whatever was posted, the form shows the session's own.
    values = {**values, "national_id": [session.login]}
    lang = page_language(request)
    options = choices(svc)
    return render(
        request,
        "registration.html",
        status,
        csrf=csrf_of(session),
        values=values,
        errors=dict(errors or {}),
        label=functools.partial(_label, i18n.translator(page_language(request))),
        key=key or secrets.token_urlsafe(16),
        notice=notice,
        choices=choices(svc),
        school_rows=range(webform.SCHOOL_ROWS),
        reserved_rows=range(webform.RESERVED_ROWS),
        first_grade=webform.FIRST_GRADE,
        window=window_info(svc, session),
        answered=answered,
        options=_localised(options, lang),
        rules=svc.rules,
        photo_limit_mb=f"{svc.settings.photo_max_bytes / 2**20:g}",
        shown_photo=shown_photo,
    )


def _localised(options: Mapping[str, Any], lang: i18n.Lang) -> dict[str, list[tuple[str, str]]]:
    """The code lists kept as (code, Vietnamese, English) as (code, name) in `lang`."""
    index = 2 if lang == "en" else 1
    hint = str(i18n.translator(lang)("old_paper_hint"))
    names = (
        "curricula",
        "study_tracks",
        "exemption_bases",
        "all_papers_reasons",
        "graduation_priorities",
        "graduation_encouragements",
    )
    result = {name: [(row[0], row[index]) for row in options[name]] for name in names}
    result["electives"] = [
        *options["electives"],
        *((code, f"{name} {hint}") for code, name in options["old_papers"]),
    ]
    return result


@page
async def registration_page(request: Request) -> Response:
    svc, session, profile = await require(request)
    window = window_info(svc, session, profile)
    if not is_open(window):
        return render(request, "closed.html", csrf=csrf_of(session), window=window)
    current = await current_registration(svc, session.subject)
    values = webform.from_form(current["form"]) if current else _defaults(profile)
    shown = (current["form"].get("photo_sha256") or "") if current else ""
    return _form_page(request, svc, session, values, answered=False, shown_photo=shown)


def _retry_page(
    request: Request,
    svc: Services,
    values: Values,
    exc: ExamregError,
    csrf: str,
    session: Session | None = None,
) -> Response:
    """Overload: everything typed, the same Idempotency-Key included, rides in hidden inputs."""
    seconds = exc.retry_after or svc.settings.retry_after_seconds
    carried = [(n, v) for n, items in values.items() if n != "action" for v in items]
    return render(
        request,
        "retry.html",
        exc.status,
        {"Retry-After": str(seconds)},
        carried=carried,
        seconds=seconds,
        countdown=Markup('<span data-countdown="">%d</span>') % seconds,
        csrf=csrf,
        window=window_info(svc, session),
        answered=True,
    )


async def _submit(
    request: Request, svc: Services, session: Session, values: Values, key: str
) -> Response:
    built = webform.to_body(values)
    lang = page_language(request)
    try:
        receipt = await candidates.submit(svc, session, key, built.body)
    except InvalidRegistration as exc:
        errors = webform.errors_by_input(exc.errors, lang, built.school_rows, built.reserved_rows)
        return _form_page(request, svc, session, values, status=422, errors=errors, key=key)
    except IdempotencyKeyReused:  # e.g. the back button, then other content: a fresh key
        notice = str(i18n.translator(lang)("key_reused"))
        return _form_page(request, svc, session, values, status=422, notice=notice)
    except WindowClosed:
        return render(
            request,
            "closed.html",
            409,
            csrf=csrf_of(session),
            window=window_info(svc, session),
            answered=True,
        )
    except (Overloaded, RateLimited, Unavailable) as exc:
        return _retry_page(request, svc, values, exc, csrf_of(session), session)
    return RedirectResponse(f"/receipts/{receipt.receipt_id}", 303)


@page
async def registration_submit(request: Request) -> Response:
    svc = services(request)
    unavailable = Unavailable(retry_after=svc.settings.retry_after_seconds)
    try:
        session = await session_or_none(request)
    except INFRASTRUCTURE:
        # The session store is unreachable: read the form only to keep it on the retry page.
        values = await read_form(request, svc.settings.max_body_bytes)
        return _retry_page(request, svc, values, unavailable, first(values, "csrf_token"))
    if session is None:
        raise expired(request)  # before the form is read: an anonymous upload waits for nothing
    values, files = await read_form_with_files(
        request, svc.settings.max_body_bytes, svc.settings.photo_max_bytes
    )
    check_csrf(session, values)
    if await candidates.must_change_password(svc, session):  # the issued password first
        raise Redirect("/password")
    admit(request, shed=False)
    key = first(values, "idempotency_key")
    if not candidates.valid_idempotency_key(key):
        key = secrets.token_urlsafe(16)
    values = {**values, "idempotency_key": [key]}
    upload = files.get("photo")
    if upload is not None:
        try:
            stored = await photos.ingest(svc, upload.data, upload.media_type)
        except InvalidPhoto as exc:
            errors = {"photo_sha256": [detail(exc, page_language(request))]}
            return _form_page(
                request, svc, session, values, status=exc.status, errors=errors, key=key
            )
        except (Overloaded, Unavailable) as exc:
            return _retry_page(request, svc, values, exc, csrf_of(session))
        # From here on the form carries the hash: an error page or a retry keeps the photo.
        values = {**values, "photo_sha256": [stored.sha256]}
    if first(values, "action") == "reload":  # no JS: refresh the school lists, keep everything
        return _form_page(request, svc, session, values, key=key)
    try:
        return await _submit(request, svc, session, values, key)
    except INFRASTRUCTURE:
        return _retry_page(request, svc, values, unavailable, csrf_of(session))


# -- receipt and status ----------------------------------------------------------------------------


@page
async def receipt_page(request: Request) -> Response:
    svc, session, profile = await require(request)
    info = await receipt_info(svc, session.subject, request.path_params["receipt_id"])
    if info is None:
        raise NotFound()
    return render(
        request,
        "receipt.html",
        csrf=csrf_of(session),
        receipt=info,
        profile=profile,
        window=window_info(svc, session, profile),
        answered=True,
    )


def _summary(form: Mapping[str, Any], svc: Services) -> dict[str, Any]:
    options = choices(svc)
    provinces, electives = dict(options["provinces"]), dict(options["electives"])
    return {
        "full_name": form.get("full_name"),
        "date_of_birth": local_date(form.get("date_of_birth")),
        "electives": [electives.get(code, code) for code in form.get("electives") or []],
        "foreign_language": form.get("foreign_language"),
        "exam_site_province": provinces.get(form.get("exam_site_province") or "", ""),
    }


@page
async def status_page(request: Request) -> Response:
    svc, session, profile = await require(request)
    current = await current_registration(svc, session.subject)
    history = [
        {
            "version": h.version,
            "receipt_id": h.receipt_id,
            "status": "persisted",
            "accepted_at": local_time(h.accepted_at),
            "persisted_at": local_time(h.persisted_at),
        }
        for h in await store.registration_history(svc.pool, session.subject)
    ]
    queued = current if current and current["status"] in ("queued", "needs_attention") else None
    if queued:
        history.insert(0, {k: v for k, v in queued.items() if k != "form"})
    newest = (queued["version"], queued["form"]) if queued else None
    lang = page_language(request)
    changes = {
        version: form_labels.json_rows(rows, lang)
        for version, rows in (
            await unit_review.version_changes(svc, session.subject, newest)
        ).items()
    }
    review = await unit_review.candidate_review(
        svc, session.subject, current["version"] if current else None
    )
    if review.get("at"):
        review["at"] = local_time(review["at"])
    return render(
        request,
        "status.html",
        csrf=csrf_of(session),
        profile=profile,
        current=current,
        summary=_summary(current["form"], svc) if current else None,
        history=history,
        changes=changes,
        review=review,
        window=window_info(svc, session, profile),
    )


@page
async def print_page(request: Request) -> Response:
    """The Phiếu laid out as the official form, to check, print (A4) and sign."""
    svc, session, profile = await require(request)
    printed = await printouts.current(svc, session.subject)
    return render(
        request,
        "print.html",
        csrf=csrf_of(session),
        phieu=printed,
        profile=profile,
        window=window_info(svc),
        answered=True,
    )


@page
async def print_pdf(request: Request) -> Response:
    svc, session, _ = await require(request)
    printed = await printouts.current(svc, session.subject)
    if printed is None:
        raise NotFound()
    body = await printouts.pdf(svc, printed)
    name = f"phieu-dang-ky-{printed.receipt_id}-v{printed.version}.pdf"
    return Response(
        body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@page
async def photo_file(request: Request) -> Response:
    """The photo of the candidate's newest version (another hash, even a stored one: 404)."""
    svc, session, _ = await require(request)
    digest = request.path_params["digest"]
    current = await candidates.newest_registration(svc, session.subject)
    if current is None or current["form"].get("photo_sha256") != digest:
        raise NotFound()
    data = await svc.photos.get(digest)
    if data is None:
        raise NotFound()
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


routes = [
    Route("/", index, methods=["GET"], include_in_schema=False),
    *accounts.routes(),
    Route("/registration", registration_page, methods=["GET"], include_in_schema=False),
    Route("/registration", registration_submit, methods=["POST"], include_in_schema=False),
    Route("/receipts/{receipt_id}", receipt_page, methods=["GET"], include_in_schema=False),
    Route("/status", status_page, methods=["GET"], include_in_schema=False),
    Route("/registration/print", print_page, methods=["GET"], include_in_schema=False),
    Route("/registration/print.pdf", print_pdf, methods=["GET"], include_in_schema=False),
    Route("/registration/photo/{digest:str}", photo_file, methods=["GET"], include_in_schema=False),
]
