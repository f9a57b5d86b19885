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
    InvalidCredentials,
    InvalidRegistration,
    NotFound,
    Overloaded,
    RateLimited,
    TooManyAttempts,
    Unavailable,
    WeakPassword,
    WindowClosed,
)
from engine.http.plumbing import client_address, set_session_cookie
from engine.http.responses import services
from engine.pages import i18n, webform
from engine.pages.page import (
    INFRASTRUCTURE,
    SESSION_COOKIE,
    STATIC_DIR,
    Redirect,
    check_csrf,
    check_login_token,
    choices,
    csrf_of,
    detail,
    expired,
    is_open,
    language,
    local_date,
    local_time,
    login_form,
    page,
    read_form,
    render,
    require,
    retry_headers,
    session_or_none,
    window_info,
)
from engine.pages.webform import Values, first
from engine.services import candidates
from engine.services.accounts import authenticate
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


def _login_page(
    request: Request,
    status: int = 200,
    *,
    login_id: str = "",
    message: str = "",
    errors: Mapping[str, Sequence[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    paint = functools.partial(render, request, "login.html", status, headers)
    return login_form(
        request,
        paint,
        LOGIN_CSRF_COOKIE,
        "/login",
        login_id=login_id,
        message=message,
        errors=dict(errors or {}),
    )


@page
async def login_page(request: Request) -> Response:
    if await session_or_none(request) is not None:
        return RedirectResponse("/status", 303)
    return _login_page(request)


@page
async def login_submit(request: Request) -> Response:
    svc = services(request)
    values = await read_form(request, 4096)
    check_login_token(request, LOGIN_CSRF_COOKIE, values)
    lang = language(request)
    t = i18n.translator(lang)
    login_id, password = first(values, "login").strip(), first(values, "password")[:128]
    missing = {n: [t("field_required")] for n in ("login", "password") if not first(values, n)}
    if missing:
        return _login_page(request, 422, login_id=login_id, errors=missing)
    try:
        login = await authenticate(
            svc,
            "candidate",
            login_id,
            password,
            client_address(request),
            functools.partial(candidates.candidate_account, svc),
        )
    except InvalidCredentials as exc:
        return _login_page(request, 401, login_id=login_id, message=detail(exc, lang))
    except (TooManyAttempts, Overloaded) as exc:
        key = "login_locked" if isinstance(exc, TooManyAttempts) else "login_busy"
        message = t(key, seconds=exc.retry_after or svc.settings.retry_after_seconds)
        return _login_page(
            request, exc.status, login_id=login_id, message=message, headers=retry_headers(exc)
        )
    target = "/password" if login.account.must_change_password else "/status"
    response = RedirectResponse(target, 303)
    set_session_cookie(
        response, request, "candidate", login.token, svc.settings.session_absolute_seconds
    )
    return response


@page
async def logout(request: Request) -> Response:
    svc = services(request)
    values = await read_form(request, 4096)
    session = await session_or_none(request)
    if session is None:
        raise Redirect("/login")
    check_csrf(session, values)
    await svc.sessions.revoke(session)
    response = RedirectResponse("/login?logged_out=1", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _password_page(
    request: Request,
    svc: Services,
    session: Session,
    forced: bool,
    status: int = 200,
    errors: Mapping[str, Sequence[str]] | None = None,
    message: str = "",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return render(
        request,
        "password.html",
        status,
        headers,
        csrf=csrf_of(session),
        forced=forced,
        forced_notice="password_intro_forced",
        action="/password",
        errors=dict(errors or {}),
        message=message,
        window=window_info(svc),
    )


@page
async def password_page(request: Request) -> Response:
    svc, session, profile = await require(request, forced_ok=True)
    return _password_page(request, svc, session, profile["must_change_password"])


@page
async def password_submit(request: Request) -> Response:
    svc = services(request)
    values = await read_form(request, 4096)
    session = await session_or_none(request)
    if session is None:
        raise expired(request)
    check_csrf(session, values)
    lang = language(request)
    t = i18n.translator(lang)
    current, new = first(values, "current_password"), first(values, "new_password")
    errors: dict[str, list[str]] = {}
    status, headers, message = 422, {}, ""
    if new != first(values, "new_password_confirm"):
        errors["new_password_confirm"] = [t("password_mismatch")]
    else:
        try:
            await candidates.set_password(svc, session.subject, current, new)
            return RedirectResponse("/registration", 303)
        except InvalidCredentials:
            errors["current_password"] = [t("current_password_wrong")]
        except WeakPassword as exc:
            errors["new_password"] = [detail(exc, lang)]
        except Overloaded as exc:
            status, headers = exc.status, retry_headers(exc)
            message = t("login_busy", seconds=exc.retry_after or svc.settings.retry_after_seconds)
    profile = await store.candidate_profile(svc.pool, session.subject)
    forced = bool(profile and profile["must_change_password"])
    return _password_page(request, svc, session, forced, status, errors, message, headers)


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
    if parts[0] == "schools" and len(parts) == 3 and parts[1].isdigit():
        grade = t("grade", grade=webform.FIRST_GRADE + int(parts[1]))
        field = t("school_province") if parts[2] == "province_code" else t("school")
        return f"{grade} – {field}"
    key = {"schools": "section_schools", "residence": "section_residence"}.get(name, name)
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
) -> Response:
    """The form; `answered` when it is the server's answer to a POST (app.js forgets its copy)."""
    # The national ID is the login: whatever was posted, the form shows the session's own.
    values = {**values, "national_id": [session.login]}
    return render(
        request,
        "registration.html",
        status,
        csrf=csrf_of(session),
        values=values,
        errors=dict(errors or {}),
        label=functools.partial(_label, i18n.translator(language(request))),
        key=key or secrets.token_urlsafe(16),
        notice=notice,
        choices=choices(svc),
        school_rows=range(webform.SCHOOL_ROWS),
        first_grade=webform.FIRST_GRADE,
        window=window_info(svc),
        answered=answered,
    )


@page
async def registration_page(request: Request) -> Response:
    svc, session, profile = await require(request)
    window = window_info(svc)
    if not is_open(window):
        return render(request, "closed.html", csrf=csrf_of(session), window=window)
    current = await current_registration(svc, session.subject)
    values = webform.from_form(current["form"]) if current else _defaults(profile)
    return _form_page(request, svc, session, values, answered=False)


def _retry_page(
    request: Request, svc: Services, values: Values, exc: ExamregError, csrf: str
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
        window=window_info(svc),
        answered=True,
    )


async def _submit(
    request: Request, svc: Services, session: Session, values: Values, key: str
) -> Response:
    built = webform.to_body(values)
    lang = language(request)
    try:
        receipt = await candidates.submit(svc, session, key, built.body)
    except InvalidRegistration as exc:
        errors = webform.errors_by_input(exc.errors, lang, built.school_rows)
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
            window=window_info(svc),
            answered=True,
        )
    except (Overloaded, RateLimited, Unavailable) as exc:
        return _retry_page(request, svc, values, exc, csrf_of(session))
    return RedirectResponse(f"/receipts/{receipt.receipt_id}", 303)


@page
async def registration_submit(request: Request) -> Response:
    svc = services(request)
    values = await read_form(request, svc.settings.max_body_bytes)
    unavailable = Unavailable(retry_after=svc.settings.retry_after_seconds)
    try:
        session = await session_or_none(request)
    except INFRASTRUCTURE:  # the session store is unreachable: keep the form, retry later
        return _retry_page(request, svc, values, unavailable, first(values, "csrf_token"))
    if session is None:
        raise expired(request)
    check_csrf(session, values)
    key = first(values, "idempotency_key")
    if not candidates.valid_idempotency_key(key):
        key = secrets.token_urlsafe(16)
    values = {**values, "idempotency_key": [key]}
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
        window=window_info(svc),
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
    if current and current["status"] in ("queued", "needs_attention"):
        history.insert(0, {k: v for k, v in current.items() if k != "form"})
    return render(
        request,
        "status.html",
        csrf=csrf_of(session),
        profile=profile,
        current=current,
        summary=_summary(current["form"], svc) if current else None,
        history=history,
        window=window_info(svc),
    )


routes = [
    Route("/", index, methods=["GET"], include_in_schema=False),
    Route("/login", login_page, methods=["GET"], include_in_schema=False),
    Route("/login", login_submit, methods=["POST"], include_in_schema=False),
    Route("/logout", logout, methods=["POST"], include_in_schema=False),
    Route("/password", password_page, methods=["GET"], include_in_schema=False),
    Route("/password", password_submit, methods=["POST"], include_in_schema=False),
    Route("/registration", registration_page, methods=["GET"], include_in_schema=False),
    Route("/registration", registration_submit, methods=["POST"], include_in_schema=False),
    Route("/receipts/{receipt_id}", receipt_page, methods=["GET"], include_in_schema=False),
    Route("/status", status_page, methods=["GET"], include_in_schema=False),
]
