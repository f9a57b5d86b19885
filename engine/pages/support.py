"""The support console: server-rendered pages for the desk, over the very calls of its JSON API.

Owns the `/support` page routes: staff login (the candidates' login flow: same throttling, hashing
and rotated session, with the staff kind), the forced password change, logout, the search page with
its paginated results, the reason prompt, the candidate's record (roster data, current registration,
every version, the pipeline state), reveal and password reset (POST-redirect-GET: its one-time
password is shown once, and a reload never issues another), and the admin's record of every
action (`/support/audit`: filters by actor, action, candidate and time, paged). What each of
those reads or writes, and its audit row, is `engine.services.support_desk`'s (the record's,
`engine.services.activity_log`'s), shared with `engine.http.support`.

Every read of a candidate is a POST carrying the session's CSRF token, the search included: a
link from elsewhere cannot make an agent run an audited read with a reason someone else chose,
and no national ID, name or reason lands in a URL (history of a shared desk PC, access logs).
Rendering, sessions and CSRF checks are `engine.pages.page`'s; no inline script or style, so the
CSP stays strict. It must not talk to Redis or SQL except through `engine.services.support_desk`,
`engine.adapters.store` and the session store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.adapters import store
from engine.adapters.sessions import Session
from engine.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PasswordChangeRequired,
    Unauthenticated,
)
from engine.http.gate import admit
from engine.http.plumbing import COOKIES, client_address
from engine.http.responses import services
from engine.pages import form_labels
from engine.pages.accounts import AccountPages, LoginWords, SignedIn
from engine.pages.page import (
    Redirect,
    check_csrf,
    choices,
    csrf_of,
    local_date,
    local_time,
    page_in,
    page_language,
    read_form,
    render,
    session_or_none,
)
from engine.pages.webform import Values, first
from engine.services import activity, activity_log, printouts, support_desk, unit_review
from engine.services import staff as staff_service
from engine.services.accounts import Login
from engine.services.container import Services
from engine.services.staff import StaffSession, staff_member
from engine.services.support_desk import DESK_ROLES, Desk

__all__ = ["routes"]

HOME: Final = "/support"
LOGIN: Final = "/support/login"
CHANGE_PAGE: Final = "/support/password"
WINDOW_PAGE: Final = "/support/window"  # engine.pages.window_console
CONSOLE_ROLES: Final = DESK_ROLES | {"operator"}
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
# How long a reset's one-time password waits for the redirect's GET that shows it (once).
RESET_SHOWN_SECONDS: Final = 300

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
    roles = staff_service.ROLES if forced_ok else CONSOLE_ROLES
    try:
        staff = await staff_member(svc, session, roles, forced_ok=forced_ok)
    except Unauthenticated:
        raise Redirect(LOGIN) from None
    except PasswordChangeRequired:
        raise Redirect(CHANGE_PAGE) from None
    if not forced_ok and staff.role not in DESK_ROLES:
        raise Redirect(WINDOW_PAGE)  # an operator's console is the calendar, not the desk
    return Desk(svc, staff, client_address(request)), session


async def _viewed(request: Request, *, forced_ok: bool = False) -> tuple[Desk, Session]:
    """A console page without a form: the staff member at the desk, counted in flight."""
    desk, session = await _signed_in(request, forced_ok=forced_ok)
    admit(request, shed=False)
    return desk, session


async def _posted(request: Request, *, forced_ok: bool = False) -> tuple[Desk, Session, Values]:
    """A console form post: its fields, read once the session is known (an anonymous upload is
    never read), then its CSRF token checked; counted in flight from there."""
    desk, session = await _signed_in(request, forced_ok=forced_ok)
    values = await read_form(request, 8192)
    check_csrf(session, values)
    admit(request, shed=False)
    return desk, session, values


# -- login, logout, password ---------------------------------------------------------------------


async def _account(request: Request) -> SignedIn:
    desk, session = await _signed_in(request, forced_ok=True)
    member = await store.staff_member(desk.svc.pool, desk.staff.staff_id)
    forced = bool(member and member.must_change_password)
    return SignedIn(desk.svc, session, forced, {"staff": desk.staff})


async def _at_the_desk(svc: Services, session: Session) -> bool:
    """A staff session whose account still exists, is enabled and has a desk role skips the
    login page (read from the staff row, like every console page)."""
    try:
        await staff_member(svc, session, CONSOLE_ROLES, forced_ok=True)
    except (Unauthenticated, Forbidden):  # gone, disabled, or no desk role: log in here
        return False
    return True


def _desk_role(login: Login) -> str | None:
    """Roles without a console page are refused, with no session (every role has one now:
    operators get the calendar, `/support/window`; kept for a role added later)."""
    return None if login.account.role in CONSOLE_ROLES else "desk_role_refused"


accounts = AccountPages(
    kind="staff",
    wrap=console,
    layout="support/base.html",
    home=HOME,
    after_change=HOME,
    login_path=LOGIN,
    logout_path="/support/logout",
    change_path=CHANGE_PAGE,
    login_cookie=LOGIN_CSRF_COOKIE,
    login_field="username",
    words=LoginWords(
        title="desk_login_title",
        intro="desk_login_intro",
        label="desk_username",
        failed="desk_login_failed",
        input={"autocapitalize": "none", "spellcheck": "false", "maxlength": "40"},
    ),
    forced_notice="desk_password_forced",
    # Usernames are lower case (schema); what an agent types need not be.
    normalise=lambda typed: typed.strip().lower(),
    lookup=staff_service.staff_account,
    change_password=staff_service.change_password,
    signed_in=_account,
    frame={"home": HOME, "csrf": "", "staff": None},
    admit=_desk_role,
    skips_login=_at_the_desk,
)


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
    desk, session = await _viewed(request)
    return _search_page(request, desk, session, {})


@console
async def search_submit(request: Request) -> Response:
    desk, session, values = await _posted(request)
    params = _search_params(values)
    try:
        found = await support_desk.search(desk, params)
    except InvalidRequest as exc:
        errors = _field_errors(exc, page_language(request))
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
    desk, session = await _viewed(request)
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
        # Every field of the Phiếu, as printed (the ID and phone as the desk may see them).
        current["phieu"] = printouts.build(
            svc, form, current["receipt_id"], current["version"], current["accepted_at"]
        )
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
            # POST-redirect-GET: reloading the result repeats the GET, never this POST, which
            # would silently issue a second password.
            await desk.svc.sessions.hold_once(
                session,
                _reset_slot(candidate_id),
                {**reset, "reason": reason.strip()},
                RESET_SHOWN_SECONDS,
            )
            return RedirectResponse(_reset_result_path(candidate_id), 303)
        body = await support_desk.read_candidate(
            desk, candidate_id, reason, reveal=action == "reveal"
        )
    except InvalidRequest as exc:
        errors = _field_errors(exc, page_language(request))
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
    lang = page_language(request)
    changes = await unit_review.version_changes(desk.svc, candidate_id, mask=not body["revealed"])
    current = body["current"]
    review = await unit_review.candidate_review(
        desk.svc, candidate_id, current["version"] if current else None
    )
    if review.get("at"):
        review["at"] = local_time(review["at"])
    return _render(
        request,
        "support/candidate.html",
        session,
        desk.staff,
        record=_record_view(desk.svc, body),
        changes={v: form_labels.json_rows(rows, lang) for v, rows in changes.items()},
        review=review,
        reason=reason.strip(),
    )


def _reset_slot(candidate_id: int) -> str:
    return f"reset:{candidate_id}"


def _reset_result_path(candidate_id: int) -> str:
    return _record_path(candidate_id, "reset") + "/done"


@console
async def reset_result(request: Request) -> Response:
    """A reset's one-time password, shown once to the agent who issued it; after that (a reload,
    another tab, another agent) a page that says so, and nothing is issued again."""
    desk, session = await _viewed(request)
    candidate_id = support_desk.candidate_id_of(request.path_params["candidate_id"])
    reset = await desk.svc.sessions.take_once(session, _reset_slot(candidate_id))
    return _render(
        request,
        "support/reset.html",
        session,
        desk.staff,
        status=200 if reset else 410,
        candidate_id=candidate_id,
        reset=reset,
        reason=reset["reason"] if reset else "",
    )


# -- the record of actions (admin) ---------------------------------------------------------------

AUDIT: Final = f"{HOME}/audit"


def _require_admin(desk: Desk) -> None:
    if desk.staff.role not in support_desk.ADMIN:
        raise Forbidden()


def _audit_params(values: Values) -> dict[str, str]:
    """The form's filters as the API's; a datetime-local field is Vietnam's time."""
    params = {name: first(values, name).strip() for name in activity_log.FILTERS}
    for name in ("since", "until"):
        if params[name] and len(params[name]) <= 19:  # no offset typed: the desk's clock
            params[name] += ("" if len(params[name]) > 16 else ":00") + "+07:00"
    params["candidate"] = "".join(params["candidate"].split())
    return params


def _audit_page(
    request: Request,
    desk: Desk,
    session: Session,
    values: Values,
    *,
    found: Mapping[str, Any] | None = None,
    errors: Mapping[str, Sequence[str]] | None = None,
    status: int = 200,
) -> Response:
    entries = [
        {**e, "at": local_time(e["at"]), "detail": _detail_text(e.get("detail"))}
        for e in (found or {}).get("entries", ())
    ]
    kept = {name: first(values, name).strip() for name in activity_log.FILTERS}
    return _render(
        request,
        "support/audit.html",
        session,
        desk.staff,
        status,
        values={name: [value] for name, value in kept.items() if value},
        params={name: value for name, value in kept.items() if value and name != "page"},
        errors=dict(errors or {}),
        found=found,
        entries=entries,
        actions=activity.ACTIONS,
    )


def _detail_text(detail: Any) -> str:
    """What changed, in one line: the detail's fields (names, counts, versions; no form data)."""
    if not isinstance(detail, Mapping):
        return ""
    parts = []
    for name, value in detail.items():
        if name == "host" or value is None:
            continue
        shown = orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)
        parts.append(f"{name}: {shown}")
    return "; ".join(parts)[:600]


@console
async def audit_page(request: Request) -> Response:
    """The filters, nothing read yet (a read is a POST, audited, like every desk read)."""
    desk, session = await _viewed(request)
    _require_admin(desk)
    return _audit_page(request, desk, session, {})


@console
async def audit_submit(request: Request) -> Response:
    desk, session, values = await _posted(request)
    _require_admin(desk)
    try:
        found = await activity_log.read(desk, _audit_params(values))
    except InvalidRequest as exc:
        errors = _field_errors(exc, page_language(request))
        return _audit_page(request, desk, session, values, errors=errors, status=exc.status)
    return _audit_page(request, desk, session, values, found=found)


routes = [
    *accounts.routes(),
    Route(AUDIT, audit_page, methods=["GET"], include_in_schema=False),
    Route(AUDIT, audit_submit, methods=["POST"], include_in_schema=False),
    Route(HOME, search_page, methods=["GET"], include_in_schema=False),
    Route(HOME, search_submit, methods=["POST"], include_in_schema=False),
    Route(
        f"{HOME}/candidates/{{candidate_id}}/password-reset/done",
        reset_result,
        methods=["GET"],
        include_in_schema=False,
    ),
    *(
        Route(path, handler, methods=[method], include_in_schema=False)
        for path in (
            f"{HOME}/candidates/{{candidate_id}}",
            f"{HOME}/candidates/{{candidate_id}}/{{action}}",
        )
        for method, handler in (("GET", prompt_page), ("POST", record_submit))
    ),
]
