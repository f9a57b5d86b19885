"""What every web page needs: rendering, language, sessions, CSRF, the window banner.

Owns the Jinja2 environment (autoescaping, templates in `templates/`), static-file URLs with content
fingerprints, the `page` wrapper (errors as HTML, `Cache-Control: no-store`, the `lang` cookie),
reading `application/x-www-form-urlencoded` bodies (once the session is known), sessions as pages
see them (the candidate's: redirects to the login page, the forced first-login password change)
and the CSRF checks (per-session synchronizer token; double-submit cookie before login). The page
handlers themselves are `engine.pages.candidate`'s (candidates) and `engine.pages.support`'s (the
support console). It must not know the registration form's fields."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.adapters import backend, store
from engine.adapters.sessions import Session
from engine.domain import reference
from engine.domain.calendar import Unit
from engine.domain.reference import ELECTIVES
from engine.errors import (
    ExamregError,
    FormExpired,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from engine.http.gate import admit
from engine.http.plumbing import COOKIES, current_session, read_body
from engine.http.responses import retry_headers, services
from engine.pages import i18n, webform
from engine.pages.webform import Values, first
from engine.services.container import Services
from engine.services.window import unit_of_scope
from engine.settings import VIETNAM
from engine.types import SessionKind

_HERE = Path(__file__).resolve().parent
STATIC_DIR: Final = _HERE / "static"
SESSION_COOKIE: Final = COOKIES["candidate"]
_LANG_COOKIE_SECONDS: Final = 365 * 24 * 3600
_LOGIN_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{20,64}")
# Infrastructure failures a page answers with an HTML "try again" page, not a JSON problem.
INFRASTRUCTURE: Final[tuple[type[BaseException], ...]] = (
    *backend.REDIS_ERRORS,
    backend.PostgresConnectionError,
)

_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fingerprints() -> dict[str, str]:
    """Content hashes of the static files, appended as `?v=` so no cache serves stale JS."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


_STATIC_VERSIONS: Final = _fingerprints()


def static_url(name: str) -> str:
    return f"/static/{name}?v={_STATIC_VERSIONS[name]}"


# -- rendering ---------------------------------------------------------------------------------


class Redirect(Exception):
    """Raised by a page that must send the browser elsewhere (303 See Other)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def page_language(request: Request) -> i18n.Lang:
    """The pages' language rule: `?lang=`, then the `lang` cookie, else Vietnamese (the API's
    rule, `engine.http.responses.api_language`, reads Accept-Language instead of a cookie)."""
    return i18n.language(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE))


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A template with the page basics: `lang`, `t`, `static`, and (if logged in) `csrf`.

    `layout` and `home` let a template shared by the candidate pages and the support console
    (errors, password change) sit in either one's frame.
    """
    lang = page_language(request)
    context.setdefault("csrf", "")
    context.setdefault("window", None)
    context.setdefault("answered", False)
    context.setdefault("layout", "base.html")
    context.setdefault("home", "/")
    html = _ENV.get_template(template).render(
        lang=lang, t=i18n.translator(lang), static=static_url, **context
    )
    return HTMLResponse(html, status, headers=dict(headers or {}))


def detail(exc: ExamregError, lang: str) -> str:
    return exc.detail_en if lang == "en" else exc.detail


def error_page(
    request: Request, exc: ExamregError, not_found: str = "not_found", **context: Any
) -> HTMLResponse:
    """The error as a page; `not_found` is the catalog key that says what was not found."""
    t = i18n.translator(page_language(request))
    message: str
    if isinstance(exc, FormExpired):
        message = t("forbidden_form")
    elif isinstance(exc, NotFound):
        message = t(not_found)
    else:
        message = detail(exc, page_language(request))
    return render(
        request,
        "error.html",
        exc.status,
        retry_headers(exc),
        message=message,
        retry_after=exc.retry_after,
        **context,
    )


Handler = Callable[[Request], Awaitable[Response]]


def page_in(layout: str, home: str, not_found: str) -> Callable[[Handler], Handler]:
    """A page wrapper whose error pages sit in `layout`, with a way back to `home`."""
    frame = {"layout": layout, "home": home, "not_found": not_found}
    return functools.partial(_wrap, frame=frame)


def page(handler: Handler) -> Handler:
    """A candidate page (see `_wrap`)."""
    return _wrap(handler, {})


def _wrap(handler: Handler, frame: Mapping[str, str]) -> Handler:
    """Errors as HTML pages, never cached, and a `?lang=` choice remembered in a cookie."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            response = await handler(request)
        except Redirect as redirect:
            response = RedirectResponse(redirect.location, 303)
        except ExamregError as exc:
            response = error_page(request, exc, **frame)
        except INFRASTRUCTURE:
            retry_after = services(request).settings.retry_after_seconds
            response = error_page(request, Unavailable(retry_after=retry_after), **frame)
        # Pages carry personal data: no shared cache, no back-button copy after logout.
        response.headers["Cache-Control"] = "no-store"
        choice = request.query_params.get("lang")
        if choice in i18n.LANGS:
            response.set_cookie(
                i18n.COOKIE,
                choice,
                max_age=_LANG_COOKIE_SECONDS,
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    return wrapper


async def read_form(request: Request, limit: int) -> Values:
    """An `application/x-www-form-urlencoded` body, size- and time-limited, strictly UTF-8.

    Read it only once the session is known: an anonymous upload must never make a page wait.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType()
    raw = await read_body(request, limit)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200, errors="strict"
        )
    except ValueError as exc:  # UnicodeDecodeError is one
        raise MalformedRequest() from exc
    return webform.collect(pairs)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart form: its bytes and the type the browser declared."""

    data: bytes
    media_type: str | None
    filename: str


def _parts(content_type: str, raw: bytes) -> list[Message]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise MalformedRequest()
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) > 200:
        raise MalformedRequest()
    return [part for part in parts if isinstance(part, Message)]


async def read_form_with_files(
    request: Request, limit: int, file_limit: int
) -> tuple[Values, dict[str, Upload]]:
    """A form as `read_form` reads it, or `multipart/form-data` with its files (up to
    `file_limit` bytes more), parsed with the standard library's MIME parser. Empty file inputs
    (nothing chosen) are left out."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        return await read_form(request, limit), {}
    raw = await read_body(request, limit + file_limit)
    # The standard library's MIME parser is pure Python (about 0.3 s for 8 MB here): off the loop.
    return await asyncio.to_thread(_multipart, content_type, raw, limit)


def _multipart(content_type: str, raw: bytes, limit: int) -> tuple[Values, dict[str, Upload]]:
    values: Values = {}
    files: dict[str, Upload] = {}
    text = 0  # the fields besides files get the urlencoded form's limit, all together
    try:
        for part in _parts(content_type, raw):
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                raise MalformedRequest()
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                if data:
                    declared = part.get_content_type()
                    files[name] = Upload(
                        data, None if declared == "application/octet-stream" else declared, filename
                    )
                continue
            text += len(data)
            if text > limit:
                raise PayloadTooLarge()
            values.setdefault(name, []).append(data.decode("utf-8", errors="strict"))
    except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedRequest() from exc
    return values, files


# -- sessions and CSRF ----------------------------------------------------------------------------


async def session_or_none(request: Request, kind: SessionKind = "candidate") -> Session | None:
    try:
        return await current_session(request, kind, page=True)
    except Unauthenticated:
        return None


def expired(request: Request) -> Redirect:
    """To the login page, saying the session expired if the browser still had one."""
    return Redirect("/login?expired=1" if request.cookies.get(SESSION_COOKIE) else "/login")


async def require(
    request: Request, *, forced_ok: bool = False
) -> tuple[Services, Session, dict[str, Any]]:
    """The logged-in candidate and their roster profile, after the forced password change; a
    page without a form, so the request is counted in flight from here (never refused)."""
    svc = services(request)
    session = await session_or_none(request)
    if session is None:
        raise expired(request)
    profile = await store.candidate_profile(svc.pool, session.subject)
    if profile is None:
        raise Redirect("/login")
    if profile["must_change_password"] and not forced_ok:
        raise Redirect("/password")
    admit(request, shed=False)
    return svc, session, profile


def same_token(expected: object, submitted: str) -> bool:
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def check_csrf(session: Session, values: Values) -> None:
    """The form must echo the token the session got at login (synchronizer token pattern)."""
    if not same_token(session.scope.get("csrf"), first(values, "csrf_token")):
        raise FormExpired()


def login_token(request: Request, cookie: str) -> str:
    """The login form's token: the browser's double-submit cookie, or a fresh one."""
    value = request.cookies.get(cookie, "")
    return value if _LOGIN_TOKEN.fullmatch(value) else secrets.token_urlsafe(32)


def login_form(
    request: Request, paint: Callable[..., Response], cookie: str, path: str, **context: Any
) -> Response:
    """A login page: its form token (double-submit `cookie`, scoped to `path`) and a notice saying
    why the user is here (session expired, logged out); `paint(**context)` renders the page."""
    token = login_token(request, cookie)
    t = i18n.translator(page_language(request))
    notice = ""
    if request.query_params.get("expired"):
        notice = t("session_expired")
    elif request.query_params.get("logged_out"):
        notice = t("logged_out")
    response = paint(login_token=token, notice=notice, **context)
    set_login_token(response, request, cookie, token, path)
    return response


def set_login_token(
    response: Response, request: Request, cookie: str, token: str, path: str
) -> None:
    """Before any session exists, the login form must echo this cookie (double submit).

    Scoped to `path`, the login page's own, which is where its form posts to.
    """
    response.set_cookie(
        cookie,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=path,
    )


def check_login_token(request: Request, cookie: str, values: Values) -> None:
    if not same_token(request.cookies.get(cookie), first(values, "csrf_token")):
        raise FormExpired()


def csrf_of(session: Session) -> str:
    value = session.scope.get("csrf")
    return value if isinstance(value, str) else ""


# -- the registration window and dates ------------------------------------------------------------


def local_time(value: datetime | str | None, seconds: bool = True) -> str:
    """A moment as Vietnamese local time, e.g. `17:00:00 28/04/2026 (GMT+7)`."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    pattern = "%H:%M:%S %d/%m/%Y" if seconds else "%H:%M %d/%m/%Y"
    return moment.astimezone(VIETNAM).strftime(pattern) + " (GMT+7)"


def local_date(iso: str | None) -> str:
    """An ISO date as Vietnamese write it: 15/03/2008."""
    if not iso:
        return ""
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


def window_info(
    svc: Services, session: Session | None = None, profile: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The banner's window: the candidate's own (their unit from the session, else the profile
    the page read), with a reopen's extended deadline; the nation's for nobody in particular."""
    unit = unit_of_scope(session.scope) if session is not None else None
    if unit is None and profile is not None and isinstance(profile.get("school"), Mapping):
        school = profile["school"]
        unit = Unit(str(school["province_code"]), str(school["school_code"]))
    subject = session.subject if session is not None else None
    cw = svc.calendar.current().resolve(datetime.now(VIETNAM), subject, unit)
    opens, closes = cw.window.bounds(cw.phase)
    return {
        "phase": cw.phase,
        "opens": local_time(opens, seconds=False),
        "closes": local_time(closes, seconds=False),
        "reopened": "yes" if cw.reopen is not None else "",
    }


def is_open(window: Mapping[str, str]) -> bool:
    return window["phase"] in ("trial", "official")


# -- reference data for the selects ---------------------------------------------------------------

_CHOICES: dict[str, dict[str, Any]] = {}
_ELECTIVE_ORDER: Final = {code: i for i, (code, _) in enumerate(ELECTIVES)}


def choices(svc: Services) -> dict[str, Any]:
    """The selects' options, derived once per version of the reference data (its ETag)."""
    cached = _CHOICES.get(svc.reference_etag)
    if cached is not None:
        return cached
    ref = orjson.loads(svc.reference_body)
    schools: dict[str, list[tuple[str, str]]] = {}
    for s in ref["schools"]:
        schools.setdefault(s["province_code"], []).append(
            (s["school_code"], f"{s['school_code']} – {s['name']}")
        )
    electives = [s for s in ref["subjects"] if not s["compulsory"]]
    electives.sort(key=lambda s: _ELECTIVE_ORDER.get(s["code"], len(_ELECTIVE_ORDER)))
    result = {
        "provinces": [(p["code"], f"{p['code']} – {p['name']}") for p in ref["provinces"]],
        "birthplaces": [p["name"] for p in ref["provinces"] if p["code"] != "65"],
        "schools": schools,
        "ethnicities": [(e["name"], e["name"]) for e in ref["ethnicities"]],
        "electives": [(s["code"], s["name"]) for s in electives],
        "languages": [(x["code"], x["name"], x["name_en"]) for x in ref["languages"]],
        "certificates": [(c["code"], c["language_code"], c["name"]) for c in ref["certificates"]],
        "priority_groups": [
            (g["code"], f"{g['code']} – {g['description']}") for g in ref["priority_groups"]
        ],
        # The 2006 curriculum's combined papers, offered beside the electives (domain.md 12d).
        "old_papers": [(c, n) for c, n in reference.OLD_CURRICULUM_PAPERS if c != "NN"],
        "subjects": [
            (c, n)
            for c, n in (
                *reference.COMPULSORY_SUBJECTS,
                *reference.ELECTIVES,
                *reference.OLD_CURRICULUM_PAPERS[:2],
            )
        ],
        "school_names": {(s["province_code"], s["school_code"]): s["name"] for s in ref["schools"]},
        **{
            name: [(c, vi, en) for c, vi, en in rows]
            for name, rows in (
                ("curricula", reference.CURRICULA),
                ("study_tracks", reference.STUDY_TRACKS),
                ("exemption_bases", reference.EXEMPTION_BASES),
                ("all_papers_reasons", reference.ALL_PAPERS_REASONS),
                ("graduation_priorities", reference.GRADUATION_PRIORITIES),
                ("graduation_encouragements", reference.GRADUATION_ENCOURAGEMENTS),
            )
        },
    }
    _CHOICES.clear()
    _CHOICES[svc.reference_etag] = result
    return result
