"""The support console: server-rendered pages for the desk, over the very calls of its JSON API.

Owns the `/support` page routes: staff login (the candidates' login flow: same throttling, hashing
and rotated session, with the staff kind), the forced password change, logout, the search page with
its paginated results, the reason prompt, the candidate's record (roster data, current registration,
every version, the pipeline state), reveal and password reset. What each of those reads or writes,
and its audit row, is `engine.services.support_desk`'s, shared with `engine.http.support`.

Every read of a candidate is a POST carrying the session's CSRF token, the search included: a
link from elsewhere cannot make an agent run an audited read with a reason someone else chose,
and no national ID, name or reason lands in a URL (history of a shared desk PC, access logs).
Rendering, sessions and CSRF checks are `engine.pages.page`'s; no inline script or style, so the
CSP stays strict. It must not talk to Redis or SQL except through `engine.services.support_desk`,
`engine.adapters.store` and the session store.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.adapters import store
from engine.adapters.sessions import Session
from engine.errors import (
    Forbidden,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    Overloaded,
    PasswordChangeRequired,
    TooManyAttempts,
    Unauthenticated,
    WeakPassword,
)
from engine.http.plumbing import COOKIES, client_address, set_session_cookie
from engine.http.responses import services
from engine.pages import i18n
from engine.pages.page import (
    Redirect,
    check_csrf,
    check_login_token,
    choices,
    csrf_of,
    detail,
    language,
    local_date,
    local_time,
    login_form,
    page_in,
    read_form,
    render,
    retry_headers,
    session_or_none,
)
from engine.pages.webform import Values, first
from engine.services import staff as staff_service
from engine.services import support_desk
from engine.services.accounts import authenticate
from engine.services.container import Services
from engine.services.staff import StaffSession, staff_member
from engine.services.support_desk import DESK_ROLES, Desk

__all__ = ["routes"]

HOME: Final = "/support"
LOGIN: Final = "/support/login"
CHANGE_PAGE: Final = "/support/password"
LOGIN_CSRF_COOKIE: Final = "examreg_staff_login_csrf"
SEARCH_FIELDS: Final = (
    "national_id",
    "candidate_id",
    "name",
    "date_of_birth",
    "province_code",
    "school_code",
    "reason",
    "page",
    "page_size",  # not on the form; a bookmarklet or a test may ask for smaller pages
)
_COMPACT: Final = frozenset({"national_id", "candidate_id", "school_code", "page", "page_size"})
# What a record's sub-path asks for; the prompt's title and button are `desk_prompt_<action>`.
_ACTIONS: Final = {"": "detail", "reveal": "reveal", "password-reset": "reset"}

console = page_in("support/base.html", HOME, "desk_not_found")


# -- sessions ------------------------------------------------------------------------------------


def _render(
    request: Request,
    template: str,
    session: Session | None = None,
    staff: StaffSession | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """A console page: the staff member in the header, the session's CSRF token in its forms."""
    return render(
        request,
        template,
        status,
        headers,
        csrf=csrf_of(session) if session else "",
        staff=staff,
        home=HOME,
        **context,
    )


async def _signed_in(request: Request, *, forced_ok: bool = False) -> tuple[Desk, Session]:
    """The staff member at the desk, after any forced password change; else a redirect.

    The account is read again on every page (`staff_member`), so a password reset, a new role
    or a deleted account takes effect at once. Roles outside the desk get the API's 403 (the
    password page takes any role).
    """
    svc = services(request)
    session = await session_or_none(request, "staff")
    if session is None:
        expired = request.cookies.get(COOKIES["staff"])
        raise Redirect(f"{LOGIN}?expired=1" if expired else LOGIN)
    roles = staff_service.ROLES if forced_ok else DESK_ROLES
    try:
        staff = await staff_member(svc, session, roles, forced_ok=forced_ok)
    except Unauthenticated:
        raise Redirect(LOGIN) from None
    except PasswordChangeRequired:
        raise Redirect(CHANGE_PAGE) from None
    return Desk(svc, staff, client_address(request)), session


async def _posted(request: Request, *, forced_ok: bool = False) -> tuple[Desk, Session, Values]:
    """A console form post: its fields, once the session and its CSRF token are checked."""
    values = await read_form(request, 8192)
    desk, session = await _signed_in(request, forced_ok=forced_ok)
    check_csrf(session, values)
    return desk, session, values


# -- login, logout, password ---------------------------------------------------------------------


def _login_page(
    request: Request,
    status: int = 200,
    *,
    username: str = "",
    message: str = "",
    errors: Mapping[str, Sequence[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    paint = functools.partial(
        _render, request, "support/login.html", status=status, headers=headers
    )
    return login_form(
        request,
        paint,
        LOGIN_CSRF_COOKIE,
        LOGIN,
        username=username,
        message=message,
        errors=dict(errors or {}),
    )


@console
async def login_page(request: Request) -> Response:
    session = await session_or_none(request, "staff")
    if session is not None:
        try:
            await staff_member(services(request), session, DESK_ROLES, forced_ok=True)
            return RedirectResponse(HOME, 303)
        except (Unauthenticated, Forbidden):  # gone, disabled, or no desk role: log in here
            pass
    return _login_page(request)


@console
async def login_submit(request: Request) -> Response:
    svc = services(request)
    values = await read_form(request, 4096)
    check_login_token(request, LOGIN_CSRF_COOKIE, values)
    t = i18n.translator(language(request))
    # Usernames are lower case (schema); what an agent types need not be.
    username, password = first(values, "username").strip().lower(), first(values, "password")
    missing = {n: [t("field_required")] for n in ("username", "password") if not first(values, n)}
    if missing:
        return _login_page(request, 422, username=username, errors=missing)
    lookup = functools.partial(staff_service.staff_account, svc)
    try:
        login = await authenticate(
            svc, "staff", username, password[:128], client_address(request), lookup
        )
    except InvalidCredentials:
        return _login_page(request, 401, username=username, message=t("desk_login_failed"))
    except (TooManyAttempts, Overloaded) as exc:
        key = "login_locked" if isinstance(exc, TooManyAttempts) else "login_busy"
        message = t(key, seconds=exc.retry_after or svc.settings.retry_after_seconds)
        return _login_page(
            request, exc.status, username=username, message=message, headers=retry_headers(exc)
        )
    if login.account.role not in DESK_ROLES:  # an operator: no console, no session
        session = await svc.sessions.get(login.token, "staff")
        if session is not None:
            await svc.sessions.revoke(session)
        return _login_page(request, 403, username=username, message=t("desk_role_refused"))
    response = RedirectResponse(CHANGE_PAGE if login.account.must_change_password else HOME, 303)
    set_session_cookie(
        response, request, "staff", login.token, svc.settings.session_absolute_seconds
    )
    return response


@console
async def logout(request: Request) -> Response:
    values = await read_form(request, 4096)
    session = await session_or_none(request, "staff")
    if session is None:
        raise Redirect(LOGIN)
    check_csrf(session, values)
    await services(request).sessions.revoke(session)
    response = RedirectResponse(f"{LOGIN}?logged_out=1", 303)
    response.delete_cookie(COOKIES["staff"], path="/")
    return response


async def _password_page(
    request: Request,
    desk: Desk,
    session: Session,
    status: int = 200,
    errors: Mapping[str, Sequence[str]] | None = None,
    message: str = "",
    headers: Mapping[str, str] | None = None,
) -> Response:
    member = await store.staff_member(desk.svc.pool, desk.staff.staff_id)
    return _render(
        request,
        "password.html",
        session,
        desk.staff,
        status,
        headers,
        layout="support/base.html",
        action=CHANGE_PAGE,
        forced=bool(member and member.must_change_password),
        forced_notice="desk_password_forced",
        errors=dict(errors or {}),
        message=message,
    )


@console
async def password_page(request: Request) -> Response:
    desk, session = await _signed_in(request, forced_ok=True)
    return await _password_page(request, desk, session)


@console
async def password_submit(request: Request) -> Response:
    desk, session, values = await _posted(request, forced_ok=True)
    lang = language(request)
    t = i18n.translator(lang)
    current, new = first(values, "current_password"), first(values, "new_password")
    errors: dict[str, list[str]] = {}
    status, headers, message = 422, {}, ""
    if new != first(values, "new_password_confirm"):
        errors["new_password_confirm"] = [t("password_mismatch")]
    else:
        try:
            opened = await staff_service.change_password(desk.svc, session, current, new)
            response = RedirectResponse(HOME, 303)
            max_age = desk.svc.settings.session_absolute_seconds
            set_session_cookie(response, request, "staff", opened.token, max_age)
            return response
        except InvalidCredentials:
            errors["current_password"] = [t("current_password_wrong")]
        except WeakPassword as exc:
            errors["new_password"] = [detail(exc, lang)]
        except Overloaded as exc:
            status, headers = exc.status, retry_headers(exc)
            seconds = exc.retry_after or desk.svc.settings.retry_after_seconds
            message = t("login_busy", seconds=seconds)
    return await _password_page(request, desk, session, status, errors, message, headers)


# -- search --------------------------------------------------------------------------------------


def _search_params(values: Values) -> dict[str, str]:
    """The search form's fields as the API's query parameters; IDs may be typed with spaces."""
    params = {name: first(values, name).strip() for name in SEARCH_FIELDS}
    for name in _COMPACT:
        params[name] = "".join(params[name].split())
    return params


def _field_errors(exc: InvalidRequest, lang: str) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for error in exc.errors:
        grouped.setdefault(error.field, []).append(
            error.message_en if lang == "en" else error.message
        )
    return grouped


def _search_page(
    request: Request,
    desk: Desk,
    session: Session,
    params: Mapping[str, str],
    *,
    found: support_desk.SearchPage | None = None,
    errors: Mapping[str, Sequence[str]] | None = None,
    status: int = 200,
) -> Response:
    return _render(
        request,
        "support/search.html",
        session,
        desk.staff,
        status,
        values={name: [value] for name, value in params.items() if value},
        params={name: value for name, value in params.items() if value and name != "page"},
        errors=dict(errors or {}),
        found=found,
        provinces=choices(desk.svc)["provinces"],
        local_date=local_date,
    )


@console
async def search_page(request: Request) -> Response:
    desk, session = await _signed_in(request)
    return _search_page(request, desk, session, {})


@console
async def search_submit(request: Request) -> Response:
    desk, session, values = await _posted(request)
    params = _search_params(values)
    try:
        found = await support_desk.search(desk, params)
    except InvalidRequest as exc:
        errors = _field_errors(exc, language(request))
        return _search_page(request, desk, session, params, errors=errors, status=exc.status)
    return _search_page(request, desk, session, params, found=found)


# -- one candidate -------------------------------------------------------------------------------


def _action(request: Request) -> tuple[int, str]:
    """The candidate ID of the path and what is asked of the record: detail, reveal or reset."""
    candidate_id = support_desk.candidate_id_of(request.path_params["candidate_id"])
    action = _ACTIONS.get(request.path_params.get("action", ""))
    if action is None:
        raise NotFound()
    return candidate_id, action


def _record_path(candidate_id: int, action: str) -> str:
    suffix = next(path for path, name in _ACTIONS.items() if name == action)
    return f"{HOME}/candidates/{candidate_id}" + (f"/{suffix}" if suffix else "")


def _prompt(
    request: Request,
    desk: Desk,
    session: Session,
    candidate_id: int,
    action: str,
    *,
    reason: str = "",
    errors: Mapping[str, Sequence[str]] | None = None,
    status: int = 200,
) -> Response:
    return _render(
        request,
        "support/prompt.html",
        session,
        desk.staff,
        status,
        candidate_id=candidate_id,
        action=action,
        target=_record_path(candidate_id, action),
        reason=reason,
        errors=dict(errors or {}),
    )


@console
async def prompt_page(request: Request) -> Response:
    """The reason prompt: nothing about the candidate is read (or shown) before a reason."""
    desk, session = await _signed_in(request)
    candidate_id, action = _action(request)
    return _prompt(request, desk, session, candidate_id, action)


def _duration(seconds: float) -> str:
    whole = max(int(seconds), 0)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _record_view(svc: Services, body: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the page shows it: local times, names for codes."""
    options = choices(svc)
    provinces, electives = dict(options["provinces"]), dict(options["electives"])
    pipeline = dict(body["pipeline"])
    for name in ("accepted_at", "persisted_at"):
        pipeline[name] = local_time(pipeline.get(name))
    if "age_seconds" in pipeline:
        pipeline["age"] = _duration(pipeline["age_seconds"])
    current = dict(body["current"]) if body["current"] else None
    if current is not None:
        form = current.get("form") or {}
        current["form"] = {
            **form,
            "date_of_birth": local_date(form.get("date_of_birth")),
            "electives": [electives.get(code, code) for code in form.get("electives") or []],
            "exam_site_province": provinces.get(form.get("exam_site_province") or "", ""),
        }
        current["accepted_at"] = local_time(current["accepted_at"])
        current["persisted_at"] = local_time(current["persisted_at"])
    versions = [
        {
            **v,
            "accepted_at": local_time(v["accepted_at"]),
            "persisted_at": local_time(v["persisted_at"]),
        }
        for v in body["versions"]
    ]
    return {
        **body,
        "date_of_birth": local_date(body["date_of_birth"]),
        "pipeline": pipeline,
        "current": current,
        "versions": versions,
    }


@console
async def record_submit(request: Request) -> Response:
    """Detail, reveal or reset, each with the reason the form carries; audited by the desk."""
    desk, session, values = await _posted(request)
    candidate_id, action = _action(request)
    reason = first(values, "reason")
    try:
        if action == "reset":
            reset = await support_desk.reset_password(desk, candidate_id, reason)
            return _render(
                request,
                "support/reset.html",
                session,
                desk.staff,
                reset=reset,
                reason=reason.strip(),
            )
        body = await support_desk.read_candidate(
            desk, candidate_id, reason, reveal=action == "reveal"
        )
    except InvalidRequest as exc:
        errors = _field_errors(exc, language(request))
        return _prompt(
            request,
            desk,
            session,
            candidate_id,
            action,
            reason=reason,
            errors=errors,
            status=exc.status,
        )
    return _render(
        request,
        "support/candidate.html",
        session,
        desk.staff,
        record=_record_view(desk.svc, body),
        reason=reason.strip(),
    )


routes = [
    Route(LOGIN, login_page, methods=["GET"], include_in_schema=False),
    Route(LOGIN, login_submit, methods=["POST"], include_in_schema=False),
    Route("/support/logout", logout, methods=["POST"], include_in_schema=False),
    Route(CHANGE_PAGE, password_page, methods=["GET"], include_in_schema=False),
    Route(CHANGE_PAGE, password_submit, methods=["POST"], include_in_schema=False),
    Route(HOME, search_page, methods=["GET"], include_in_schema=False),
    Route(HOME, search_submit, methods=["POST"], include_in_schema=False),
    *(
        Route(path, handler, methods=[method], include_in_schema=False)
        for path in (
            f"{HOME}/candidates/{{candidate_id}}",
            f"{HOME}/candidates/{{candidate_id}}/{{action}}",
        )
        for method, handler in (("GET", prompt_page), ("POST", record_submit))
    ),
]
