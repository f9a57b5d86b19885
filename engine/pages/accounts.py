"""The account pages of a site: login, logout and the (forced) password change, made once.

Owns the one flow both the candidate site and the support console use, so the two cannot drift
apart: the login form with its double-submit token, the login itself through
`engine.services.accounts.authenticate` (throttling, hashing off the loop, a rotated session), the
answers to a wrong password, a lockout or a busy hash pool, the logout, and the password change
with its confirmation and errors next to the inputs. What differs between the two sites is data
in `AccountPages`: the session kind, the paths, the login field and its words, the account lookup
and password setter, how a signed-in user is found, and an optional check after login (the
console admits desk roles only). One template each: `login.html` and `password.html`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.adapters.sessions import Session
from engine.errors import InvalidCredentials, Overloaded, TooManyAttempts, WeakPassword
from engine.http.gate import admit
from engine.http.plumbing import COOKIES, client_address, set_session_cookie
from engine.http.responses import retry_headers, services
from engine.pages import i18n
from engine.pages.page import (
    Handler,
    Redirect,
    check_csrf,
    check_login_token,
    csrf_of,
    detail,
    login_form,
    page_language,
    read_form,
    render,
    session_or_none,
)
from engine.pages.webform import first
from engine.services.accounts import Account, Login, NewSession, authenticate
from engine.services.container import Services
from engine.types import SessionKind


async def _always(svc: Services, session: Session) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is on a page: the session, whether their password must change, and what the page's
    frame needs around the form (the candidate's window banner, the staff member's name)."""

    svc: Services
    session: Session
    forced: bool
    frame: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoginWords:
    """The i18n keys and input attributes of a site's login form."""

    title: str
    intro: str
    label: str
    failed: str | None  # None: the error's own message (InvalidCredentials.detail)
    hint: str | None = None
    input: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountPages:
    """Login, logout and password pages for one kind of account."""

    kind: SessionKind
    wrap: Callable[[Handler], Handler]  # errors as HTML pages in the site's frame
    layout: str
    home: str  # where a signed-in user goes
    after_change: str  # where a changed password leads
    login_path: str
    logout_path: str
    change_path: str
    login_cookie: str
    login_field: str
    words: LoginWords
    forced_notice: str
    normalise: Callable[[str], str]
    lookup: Callable[[Services, str], Awaitable[Account | None]]
    # (svc, session, client address, current, new): the current-password check is throttled;
    # every session of the account ends and the new one returned goes on.
    change_password: Callable[[Services, Session, str, str, str], Awaitable[NewSession]]
    signed_in: Callable[[Request], Awaitable[SignedIn]]  # raises Redirect when nobody is
    frame: Mapping[str, Any] = field(default_factory=dict)  # extra context of every page
    # After a correct password: None admits; a message key refuses (the session is revoked).
    admit: Callable[[Login], str | None] = lambda login: None
    # Whether an existing session skips the login page.
    skips_login: Callable[[Services, Session], Awaitable[bool]] = _always

    def routes(self) -> list[Route]:
        return [
            Route(path, self.wrap(handler), methods=[method], include_in_schema=False)
            for path, method, handler in (
                (self.login_path, "GET", self.login_page),
                (self.login_path, "POST", self.login_submit),
                (self.logout_path, "POST", self.logout),
                (self.change_path, "GET", self.password_page),
                (self.change_path, "POST", self.password_submit),
            )
        ]

    # -- login ---------------------------------------------------------------------------------

    def _login(
        self,
        request: Request,
        status: int = 200,
        *,
        value: str = "",
        message: str = "",
        errors: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        paint = functools.partial(
            render, request, "login.html", status, headers, layout=self.layout, **self.frame
        )
        return login_form(
            request,
            paint,
            self.login_cookie,
            self.login_path,
            action=self.login_path,
            field=self.login_field,
            words=self.words,
            login_value=value,
            message=message,
            errors=dict(errors or {}),
        )

    async def login_page(self, request: Request) -> Response:
        session = await session_or_none(request, self.kind)
        if session is not None and await self.skips_login(services(request), session):
            return RedirectResponse(self.home, 303)
        return self._login(request)

    async def login_submit(self, request: Request) -> Response:
        svc = services(request)
        values = await read_form(request, 4096)
        check_login_token(request, self.login_cookie, values)
        lang = page_language(request)
        t = i18n.translator(lang)
        value, password = self.normalise(first(values, self.login_field)), first(values, "password")
        names = (self.login_field, "password")
        missing = {n: [t("field_required")] for n in names if not first(values, n)}
        if missing:
            return self._login(request, 422, value=value, errors=missing)
        try:
            login = await authenticate(
                svc,
                self.kind,
                value,
                password,
                client_address(request),
                functools.partial(self.lookup, svc),
            )
        except InvalidCredentials as exc:
            message = t(self.words.failed) if self.words.failed else detail(exc, lang)
            return self._login(request, 401, value=value, message=message)
        except (TooManyAttempts, Overloaded) as exc:
            key = "login_locked" if isinstance(exc, TooManyAttempts) else "login_busy"
            message = t(key, seconds=exc.retry_after or svc.settings.retry_after_seconds)
            return self._login(
                request, exc.status, value=value, message=message, headers=retry_headers(exc)
            )
        refused = self.admit(login)
        if refused is not None:  # a correct password, but no place on this site: no session
            session = await svc.sessions.get(login.token, self.kind)
            if session is not None:
                await svc.sessions.revoke(session)
            return self._login(request, 403, value=value, message=t(refused))
        target = self.change_path if login.account.must_change_password else self.home
        response = RedirectResponse(target, 303)
        set_session_cookie(
            response, request, self.kind, login.token, svc.settings.session_absolute_seconds
        )
        return response

    async def logout(self, request: Request) -> Response:
        session = await session_or_none(request, self.kind)
        if session is None:
            raise Redirect(self.login_path)
        values = await read_form(request, 4096)  # once the session is known
        check_csrf(session, values)
        admit(request, shed=False)
        await services(request).sessions.revoke(session)
        response = RedirectResponse(f"{self.login_path}?logged_out=1", 303)
        response.delete_cookie(COOKIES[self.kind], path="/")
        return response

    # -- password --------------------------------------------------------------------------------

    def _password(
        self,
        request: Request,
        signed: SignedIn,
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
            **{
                **self.frame,
                **signed.frame,
                "layout": self.layout,
                "csrf": csrf_of(signed.session),
                "action": self.change_path,
                "forced": signed.forced,
                "forced_notice": self.forced_notice,
                "min_length": signed.svc.settings.password_min_length,
                "errors": dict(errors or {}),
                "message": message,
            },
        )

    async def password_page(self, request: Request) -> Response:
        return self._password(request, await self.signed_in(request))

    async def password_submit(self, request: Request) -> Response:
        signed = await self.signed_in(request)
        values = await read_form(request, 4096)  # once the session is known
        check_csrf(signed.session, values)
        admit(request, shed=False)
        lang = page_language(request)
        t = i18n.translator(lang)
        current, new = first(values, "current_password"), first(values, "new_password")
        errors: dict[str, list[str]] = {}
        status, headers, message = 422, {}, ""
        if new != first(values, "new_password_confirm"):
            errors["new_password_confirm"] = [t("password_mismatch")]
        else:
            try:
                opened = await self.change_password(
                    signed.svc, signed.session, client_address(request), current, new
                )
                response = RedirectResponse(self.after_change, 303)
                max_age = signed.svc.settings.session_absolute_seconds
                set_session_cookie(response, request, self.kind, opened.token, max_age)
                return response
            except InvalidCredentials:
                errors["current_password"] = [t("current_password_wrong")]
            except WeakPassword as exc:
                errors["new_password"] = [
                    e.message_en if lang == "en" else e.message for e in exc.errors
                ] or [detail(exc, lang)]
            except (TooManyAttempts, Overloaded) as exc:
                key = "login_locked" if isinstance(exc, TooManyAttempts) else "login_busy"
                status, headers = exc.status, retry_headers(exc)
                seconds = exc.retry_after or signed.svc.settings.retry_after_seconds
                message = t(key, seconds=seconds)
        return self._password(request, signed, status, errors, message, headers)
