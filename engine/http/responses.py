"""How the JSON API answers: bodies, problems, the container, the language of a message.

Owns `json_response` (never cached unless told), the one rendering of an `ExamregError` as
`application/problem+json` (with `Retry-After` from `retry_headers`, which the pages use too),
the API's language rule (`api_language`: `?lang=`, then `Accept-Language`) and `services`, the
handlers' way to the process's `Services` container. It must not know any route.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from engine.errors import ExamregError
from engine.services.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def api_language(request: Request) -> str:
    """`?lang=en` or an English Accept-Language switches messages to English; Vietnamese first."""
    lang = request.query_params.get("lang")
    if lang in ("vi", "en"):
        return lang
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "vi"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer, `Cache-Control: no-store` unless `headers` say otherwise: most carry a
    token or personal data (login, profile, registration, receipts, the desk), which no browser
    or proxy cache may keep."""
    return Response(
        orjson.dumps(body),
        status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type="application/json",
    )


def retry_headers(exc: ExamregError) -> dict[str, str]:
    """`Retry-After` for an error that carries one (overload, throttling), else nothing."""
    return {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}


def problem(exc: ExamregError, lang: str) -> Response:
    return Response(
        orjson.dumps(exc.to_problem(lang)),
        exc.status,
        headers=retry_headers(exc) or None,
        media_type="application/problem+json",
    )
