"""The console's calendar page: the national window, the overrides, and targeted reopens.

Owns `/support/window` (operators and admins; issue 14 item 2): the calendar as it stands, a form
that reopens registration for units, provinces or candidates until an instant with a reason, and
every reopen with a button that closes it early (each with a reason of its own). Posts carry the
session's CSRF token and answer with a redirect (POST-redirect-GET), so a reload repeats nothing.
What each change checks and audits is `engine.services.window`'s, the very calls of the JSON API.
"""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.adapters.sessions import Session
from engine.errors import InvalidRequest, NotFound, PasswordChangeRequired, Unauthenticated
from engine.http.gate import admit
from engine.http.plumbing import COOKIES, client_address
from engine.http.responses import services
from engine.pages.page import (
    Redirect,
    check_csrf,
    csrf_of,
    local_time,
    page_in,
    page_language,
    read_form,
    render,
    session_or_none,
)
from engine.pages.webform import Values, first
from engine.services import calendar_changes
from engine.services.staff import StaffSession, staff_member
from engine.services.window import Actor

PATH: Final = "/support/window"
LOGIN: Final = "/support/login"
OPERATORS: Final = frozenset({"operator", "admin"})
# <input type="datetime-local"> sends no offset: the console means Vietnam's time.
_LOCAL: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?")
_SPLIT: Final = re.compile(r"[\s,;]+")

console = page_in("support/base.html", PATH, "desk_not_found")


async def _operator(request: Request) -> tuple[StaffSession, Session]:
    session = await session_or_none(request, "staff")
    if session is None:
        raise Redirect(f"{LOGIN}?expired=1" if request.cookies.get(COOKIES["staff"]) else LOGIN)
    try:
        staff = await staff_member(services(request), session, OPERATORS)
    except Unauthenticated:
        raise Redirect(LOGIN) from None
    except PasswordChangeRequired:
        raise Redirect("/support/password") from None
    return staff, session


def _codes(values: Values, name: str) -> list[str]:
    return [code for code in _SPLIT.split(first(values, name)) if code]


def _instant(raw: str) -> str:
    text = raw.strip()
    return f"{text}+07:00" if _LOCAL.fullmatch(text) else text


def _errors(exc: InvalidRequest, lang: str) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for error in exc.errors:
        field = error.field.split(".")[0] or "targets"
        grouped.setdefault(field, []).append(error.message_en if lang == "en" else error.message)
    return grouped


async def _page(
    request: Request,
    staff: StaffSession,
    session: Session,
    *,
    values: Values | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    calendar = await calendar_changes.calendar_json(svc.pool, svc.calendar)
    return render(
        request,
        "support/window.html",
        status,
        csrf=csrf_of(session),
        staff=staff,
        home=PATH,
        calendar=calendar,
        values=values or {},
        errors=errors or {},
        local_time=local_time,
        notice=request.query_params.get("done", ""),
    )


@console
async def window_page(request: Request) -> Response:
    staff, session = await _operator(request)
    admit(request, shed=False)
    return await _page(request, staff, session)


async def _posted(request: Request) -> tuple[StaffSession, Session, Values, Actor]:
    staff, session = await _operator(request)
    values = await read_form(request, 16384)
    check_csrf(session, values)
    admit(request, shed=False)
    actor = Actor(staff.username, staff.role, staff.staff_id, client_address(request))
    return staff, session, values, actor


@console
async def reopen_submit(request: Request) -> Response:
    staff, session, values, actor = await _posted(request)
    body: dict[str, Any] = {
        "units": _codes(values, "units"),
        "provinces": _codes(values, "provinces"),
        "candidates": _codes(values, "candidates"),
        "until": _instant(first(values, "until")),
        "reason": first(values, "reason"),
    }
    svc = services(request)
    try:
        created = await calendar_changes.create_reopen(svc.pool, svc.calendar, actor, body)
    except InvalidRequest as exc:
        errors = _errors(exc, page_language(request))
        return await _page(request, staff, session, values=values, errors=errors, status=422)
    return RedirectResponse(f"{PATH}?done=created-{created['reopen']['reopen_id']}", 303)


@console
async def reopen_close(request: Request) -> Response:
    staff, session, values, actor = await _posted(request)
    raw = request.path_params["reopen_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise NotFound()
    svc = services(request)
    body = {"reason": first(values, "reason")}
    try:
        await calendar_changes.close_reopen(svc.pool, svc.calendar, actor, int(raw), body)
    except InvalidRequest as exc:
        errors = {f"close-{raw}": _errors(exc, page_language(request))["reason"]}
        return await _page(request, staff, session, errors=errors, status=422)
    return RedirectResponse(f"{PATH}?done=closed-{raw}", 303)


routes = [
    Route(PATH, window_page, methods=["GET"], include_in_schema=False),
    Route(f"{PATH}/reopens", reopen_submit, methods=["POST"], include_in_schema=False),
    Route(
        f"{PATH}/reopens/{{reopen_id}}/close",
        reopen_close,
        methods=["POST"],
        include_in_schema=False,
    ),
]
