"""The OpenAPI 3.1 description of HTTP API v1, served at `/openapi.json`.

Owns the written contract of every route; a test checks it against the routes the app serves, so
a route cannot be added without being described here.
"""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _op(
    summary: str, ok: dict[str, Any], errors: tuple[int, ...] = (), **extra: Any
) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ok)
    # A body that does not arrive within EXAMREG_BODY_TIMEOUT_SECONDS: 408 request_timeout.
    for status in sorted({*errors, 408} if "requestBody" in extra else set(errors)):
        responses[str(status)] = _PROBLEM
    return {"summary": summary, "responses": responses, **extra}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(
    name: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema or _TEXT}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_OBJ: dict[str, Any] = {"type": "object"}
# Free text the server trims, folds and checks itself (a blank one is ignored where optional).
_TEXT: dict[str, Any] = {"type": "string"}
# Ids in paths and queries: what `support_desk` parses (ASCII digits, 1 to 2^62; 0 is unknown).
_ID: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 2**62}
_INSTANT: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_WINDOW: dict[str, Any] = {
    "type": "object",
    "required": ["phase", "opens_at", "closes_at", "trial_opens_at", "trial_closes_at"],
    "properties": {
        "phase": {"enum": ["before", "trial", "official", "closed"]},
        "opens_at": _INSTANT,
        "closes_at": _INSTANT,
        "trial_opens_at": _INSTANT,
        "trial_closes_at": _INSTANT,
        "locks_at": {**_INSTANT, "description": "The national close: the system-wide lock."},
        "scope": {
            "type": "object",
            "description": "A candidate's only: where each window comes from.",
            "properties": {
                "trial": {"enum": ["national", "province", "unit"]},
                "official": {"enum": ["national", "province", "unit"]},
            },
        },
        "reopened_until": {**_INSTANT, "description": "A candidate's only: a reopen's end."},
        "lang": {"enum": ["vi", "en"]},
    },
}
# Codes and instants are checked against the reference data and across fields (trial windows have
# both ends, a province's or unit's official window closes by the national lock).
_WINDOW_SCOPE: dict[str, Any] = {
    "type": "object",
    "required": ["scope", "kind", "reason"],
    "properties": {
        "scope": {"enum": ["national", "province", "unit"]},
        "kind": {"enum": ["trial", "official"]},
        "province_code": {"type": "string", "pattern": "^[0-9]{2}$"},
        "school_code": {"type": "string", "pattern": "^[0-9]{3}$"},
        "reason": {"type": "string", "minLength": 3, "maxLength": 500},
    },
}
_WINDOW_SET: dict[str, Any] = {
    **_WINDOW_SCOPE,
    "properties": {
        **_WINDOW_SCOPE["properties"],
        "opens_at": {
            "type": ["string", "null"],
            "description": "ISO 8601 with an offset; a bare date opens at 00:00 +07:00.",
        },
        "closes_at": {
            "type": ["string", "null"],
            "description": "ISO 8601 with an offset; a bare date closes at 17:00 +07:00.",
        },
    },
}
_REOPEN: dict[str, Any] = {
    "type": "object",
    "required": ["until", "reason"],
    "properties": {
        "provinces": {
            "type": "array",
            "maxItems": 1000,
            "items": {"type": "string", "pattern": "^[0-9]{2}$"},
        },
        "units": {
            "type": "array",
            "maxItems": 1000,
            "items": {"type": "string", "pattern": "^[0-9]{2}-[0-9]{3}$"},
        },
        "candidates": {"type": "array", "maxItems": 1000, "items": _ID},
        "until": {
            "type": "string",
            "description": "ISO 8601 with an offset, within 31 days; a bare date: 17:00 +07:00.",
        },
        "reason": {"type": "string", "minLength": 3, "maxLength": 500},
    },
}
# In queries a blank number means "not given", so they are digits or nothing.
_QUERY_ID: dict[str, Any] = {
    "type": "string",
    "pattern": "^([0-9]{1,19})?$",
    "description": "A whole number from 1 to 2^62; blank: not given.",
}
_PAGE: dict[str, Any] = {
    "type": "string",
    "pattern": "^([0-9]{1,19})?$",
    "description": "A page number from 1 to 10000; blank: the first.",
}
# A reason (ticket reference or description): 3–500 characters once trimmed, no control characters.
_REASON: dict[str, Any] = {"type": "string", "minLength": 3}
# Passwords as the policy of engine.domain.passwords takes them (at most 128 characters are read).
_SECRET: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128}
_NEW_PASSWORD: dict[str, Any] = {
    "type": "string",
    "minLength": 8,
    "maxLength": 128,
    "description": "At least one letter and one digit, and not the current password.",
}


def _credentials(login: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [login, "password"],
        "properties": {
            login: {"type": "string", "minLength": 1, "maxLength": 64},
            "password": _SECRET,
        },
    }


_PASSWORD_CHANGE: dict[str, Any] = {
    "type": "object",
    "required": ["current_password", "new_password"],
    "properties": {"current_password": _SECRET, "new_password": _NEW_PASSWORD},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
# Staff calls: the header only, never the console's cookie (a clicked link must not act).
_STAFF: list[dict[str, list[str]]] = [{"bearer": []}]

# Necessary, not sufficient: the server also checks the form against the roster (the national ID
# must be the logged-in candidate's), the reference data and the rules across fields (domain.md).
_FORM = {
    "type": "object",
    "additionalProperties": False,
    # Grade-12 students (type a) list their three schools; free candidates may leave them out.
    "if": {"properties": {"candidate_type": {"const": "a"}}, "required": ["candidate_type"]},
    "then": {"required": ["schools"], "properties": {"schools": {"type": "array"}}},
    "required": [
        "full_name",
        "date_of_birth",
        "sex",
        "national_id",
        "ethnicity",
        "birthplace",
        "residence",
        "phone",
        "candidate_type",
        "purposes",
        "electives",
        "exam_site_province",
    ],
    "properties": {
        "full_name": {
            "type": "string",
            "minLength": 2,
            "maxLength": 80,
            "description": "2–80 characters as stored: NFC, upper case (ß counts as SS)",
        },
        "date_of_birth": {"type": "string", "format": "date"},
        "sex": {"enum": ["male", "female"]},
        "national_id": {"type": "string", "pattern": "^[0-9]{12}$"},
        "ethnicity": {"type": "string"},
        "birthplace": {"type": "string"},
        "residence": {
            "type": "object",
            "required": ["address", "province_code"],
            "properties": {
                "address": {"type": "string"},
                "province_code": {"type": "string", "pattern": "^[0-9]{2}$"},
                "commune_code": {"type": ["string", "null"]},
                "kv1_over_18_months": {"type": ["boolean", "null"]},
                "district_code": {
                    "type": ["string", "null"],
                    "description": "Mã huyện; nullable (no district level since 1/7/2025)",
                },
                "difficult_commune_over_18_months": {
                    "type": ["boolean", "null"],
                    "description": "Needs commune_code (the especially-difficult commune)",
                },
            },
        },
        "schools": {
            "type": ["array", "null"],
            "maxItems": 3,
            "items": {
                "type": "object",
                "required": ["grade", "province_code", "school_code"],
                "properties": {
                    "grade": {"enum": [10, 11, 12]},
                    "province_code": {"type": "string"},
                    "school_code": {"type": "string", "pattern": "^[0-9]{3}$"},
                },
            },
        },
        "phone": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "candidate_type": {"enum": ["a", "b", "c", "d"]},
        "purposes": {
            "type": "array",
            "items": {"enum": ["graduation", "admission"]},
            "minItems": 1,
        },
        "electives": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}},
        "foreign_language": {"type": ["string", "null"], "pattern": "^N[1-7]$"},
        "exemptions": {
            "type": ["object", "null"],
            "description": "Foreign-language (needs NN; certificate of that language, valid up "
            "to the exam-procedures day), Literature (foreign nationals) and all-paper exemptions",
            "properties": {
                "foreign_language_certificate": {"type": ["string", "null"]},
                "foreign_language_basis": {
                    "type": ["string", "null"],
                    "enum": ["CERTIFICATE", "OLYMPIC_TEAM", None],
                },
                "certificate_score": {"type": ["string", "null"], "maxLength": 20},
                "certificate_expires_on": {"type": ["string", "null"], "format": "date"},
                "literature_certificate_level": {
                    "type": ["integer", "null"],
                    "minimum": 3,
                    "maximum": 6,
                },
                "all_papers_reason": {
                    "type": ["string", "null"],
                    "enum": [
                        "NATIONAL_OLYMPIAD_SELECTION",
                        "INTERNATIONAL_TEAM",
                        "DISABILITY",
                        None,
                    ],
                },
            },
        },
        "priority_group": {"type": ["string", "null"], "pattern": "^0[1-7]$"},
        "exam_site_province": {"type": "string"},
        # The rest of the Phiếu (issue 13); optional, absent means the default.
        "class_12": {"type": ["string", "null"], "maxLength": 20},
        "contact_address": {"type": ["string", "null"], "maxLength": 200},
        "curriculum": {
            "type": ["string", "null"],
            "enum": ["GDPT2018", "GDPT2006", None],
            "description": "Default GDPT2018; GDPT2006 (old papers KHTN/KHXH + NN) for free "
            "candidates only, while EXAMREG_FORM_OLD_CURRICULUM allows it",
        },
        "study_track": {"type": ["string", "null"], "enum": ["THPT", "GDTX", None]},
        "foreign_national": {"type": ["boolean", "null"]},
        "diploma_year": {"type": ["integer", "null"], "description": "Types c and d only"},
        "reserved_scores": {
            "type": ["array", "null"],
            "description": "Types b and c; scores of at least EXAMREG_FORM_RESERVED_SCORE_MIN",
            "items": {
                "type": "object",
                "required": ["subject", "score", "exam_year"],
                "properties": {
                    "subject": {"type": "string"},
                    "score": {"type": ["number", "string"]},
                    "exam_year": {"type": "integer"},
                },
            },
        },
        "graduation_priority": {"type": ["string", "null"], "enum": ["P025", "P050", None]},
        "graduation_encouragement": {
            "type": ["string", "null"],
            "enum": ["VOCATIONAL_CERTIFICATE", None],
            "description": "Abolished from 2025 unless EXAMREG_FORM_VOCATIONAL_ENCOURAGEMENT",
        },
        "registration_unit": {
            "type": ["object", "null"],
            "description": "Default for type a: the grade-12 school, which it must be",
            "required": ["province_code", "unit_code"],
            "properties": {
                "province_code": {"type": "string", "pattern": "^[0-9]{2}$"},
                "unit_code": {"type": "string", "pattern": "^[0-9]{3}$"},
            },
        },
        "photo_sha256": {
            "type": ["string", "null"],
            "pattern": "^[0-9a-f]{64}$",
            "description": "The hash POST /api/v1/me/photo returned; required when "
            "EXAMREG_PHOTO_REQUIRED",
        },
    },
}
_PHOTO = {
    "type": "object",
    "required": ["photo_sha256", "width", "height", "bytes", "media_type"],
    "properties": {
        "photo_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "bytes": {"type": "integer"},
        "media_type": {"enum": ["image/jpeg"]},
    },
}

_SESSION = {
    "type": "object",
    "required": ["token", "expires_at", "must_change_password"],
    "properties": {
        "token": {"type": "string", "description": "Send as `Authorization: Bearer <token>`"},
        "expires_at": {"type": "string", "format": "date-time"},
        "must_change_password": {"type": "boolean"},
    },
}

# A version the writer could not store (dead-lettered) until an operator replays it.
_ATTENTION = {
    "type": "object",
    "required": ["code", "message", "message_en"],
    "description": "Only with status needs_attention: why, and what the candidate can do",
    "properties": {
        "code": {"enum": ["not_stored"]},
        "message": {"type": "string", "description": "Vietnamese"},
        "message_en": {"type": "string"},
    },
}
_STATUS = {"enum": ["queued", "persisted", "needs_attention"]}
_RECEIPT = {
    "type": "object",
    "required": ["receipt_id", "version", "status"],
    "properties": {
        "receipt_id": {"type": "string"},
        "version": {"type": "integer"},
        "status": _STATUS,
        "phase": {"enum": ["trial", "official"]},
        "accepted_at": {"type": "string", "format": "date-time"},
        "attention": _ATTENTION,
    },
}
_REGISTRATION = {
    "type": "object",
    "required": ["version", "status", "receipt_id", "phase", "accepted_at", "form"],
    "properties": {
        "version": {"type": "integer"},
        "status": _STATUS,
        "receipt_id": {"type": "string"},
        "phase": {"enum": ["trial", "official"]},
        "accepted_at": {"type": "string", "format": "date-time"},
        "persisted_at": {"type": ["string", "null"], "format": "date-time"},
        "form": _OBJ,
        "attention": _ATTENTION,
        "review": {
            "type": "object",
            "required": ["state"],
            "description": "The registration unit's review of the newest version (issue 13): "
            "`confirmed` once the unit confirmed it; `changed` when the candidate edited after "
            "the unit's last decision; `returned` with the unit's reason to correct",
            "properties": {
                "state": {"enum": ["unreviewed", "changed", "returned", "confirmed"]},
                "version": {"type": "integer", "description": "the version decided on"},
                "action": {"enum": ["confirm", "return"]},
                "at": {"type": "string", "format": "date-time"},
                "reason": {"type": ["string", "null"]},
            },
        },
    },
}


def _paths() -> dict[str, Any]:
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    }
    return {
        "/api/v1/auth/login": {
            "post": _op(
                "Log in with the 12-digit ID and the password the school issued",
                {"200": _json(_SESSION)},
                (400, 401, 413, 415, 422, 429, 503),
                requestBody=_body(_credentials("login")),
            )
        },
        "/api/v1/auth/logout": {
            "post": _op(
                "Revoke the session",
                {"204": {"description": "Logged out"}},
                (401,),
                security=_BEARER,
            )
        },
        "/api/v1/auth/password": {
            "post": _op(
                "Change the password: every session of the account ends (this one too); the"
                " caller goes on with the new session returned (token and cookie)",
                {"200": _json(_SESSION, "Changed; the new session")},
                (400, 401, 413, 415, 422, 429, 503),
                security=_BEARER,
                requestBody=_body(_PASSWORD_CHANGE),
            )
        },
        "/api/v1/staff/login": {
            "post": _op(
                "Staff login (support, school, operator, admin)",
                {"200": _json(_SESSION)},
                (400, 401, 413, 415, 422, 429, 503),
                requestBody=_body(_credentials("username")),
            )
        },
        "/api/v1/staff/logout": {
            "post": _op(
                "Revoke the staff session",
                {"204": {"description": "Logged out"}},
                (401,),
                security=_STAFF,
            )
        },
        "/api/v1/staff/password": {
            "post": _op(
                "Change the staff password: every session of the account ends (this one too);"
                " the caller goes on with the new session returned",
                {"200": _json(_SESSION, "Changed; the new session")},
                (400, 401, 403, 413, 415, 422, 429, 503),
                security=_STAFF,
                requestBody=_body(_PASSWORD_CHANGE),
            )
        },
        "/api/v1/support/candidates": {
            "get": _op(
                "Search candidates by national_id, candidate_id, name [+ date_of_birth]"
                " or province_code + school_code, with a reason (required); audited with the"
                " IDs of the candidates shown",
                {"200": _json(_OBJ)},
                (401, 403, 422),
                security=_STAFF,
                # At least one criterion; province_code and school_code together; a reason always.
                # Blank ones are ignored.
                parameters=[
                    _query("national_id", {"type": "string", "pattern": "^([0-9]{12})?$"}),
                    _query("candidate_id", _QUERY_ID),
                    _query("name"),
                    _query("date_of_birth"),
                    _query("province_code", {"type": "string", "pattern": "^([0-9]{2})?$"}),
                    _query("school_code", {"type": "string", "pattern": "^([0-9]{3})?$"}),
                    _query("page", _PAGE),
                    _query("page_size", _QUERY_ID),
                    _query("reason", _REASON, required=True),
                ],
            )
        },
        "/api/v1/support/candidates/{candidate_id}": {
            "get": _op(
                "Candidate detail, every version, the pipeline state; audited; reason required",
                {"200": _json(_OBJ)},
                (401, 403, 404, 422),
                security=_STAFF,
                parameters=[
                    _path("candidate_id", _ID),
                    _query("reason", _REASON, required=True),
                    _query("reveal"),  # 1 or true reveals; anything else does not
                ],
            )
        },
        "/api/v1/support/candidates/{candidate_id}/password-reset": {
            "post": _op(
                "Issue a one-time password, force a change, revoke sessions; audited",
                {"200": _json(_OBJ)},
                (400, 401, 403, 404, 413, 415, 422),
                security=_STAFF,
                parameters=[_path("candidate_id", _ID)],
                requestBody=_body(
                    {"type": "object", "required": ["reason"], "properties": {"reason": _REASON}}
                ),
            )
        },
        "/api/v1/support/audit": {
            "get": _op(
                "The record of every action, newest first (admin): the audit log (candidates'"
                " logins and password changes, staff reads, operators' and admins' commands) and"
                " the submissions and edits derived from the persisted versions",
                {"200": _json(_OBJ)},
                (401, 403, 422),
                security=_STAFF,
                parameters=[
                    _query("staff"),
                    _query("actor"),  # a username, an operator's --actor, or candidate:<id>
                    _query("action"),  # login, submit, edit, search, reconcile, …
                    _query("candidate", _QUERY_ID),
                    _query("since"),  # ISO 8601 instants
                    _query("until"),
                    _query("page", _PAGE),
                    _query("reason"),
                ],
            )
        },
        "/api/v1/me": {
            "get": _op(
                "The candidate's roster profile",
                {"200": _json(_OBJ)},
                (401, 403),
                security=_BEARER,
            )
        },
        "/api/v1/me/registration": {
            "put": _op(
                "Submit or edit the registration (acknowledged once durable)",
                {"202": _json(_RECEIPT, "Accepted: durably queued")},
                (400, 401, 403, 409, 413, 415, 422, 429, 503),
                security=_BEARER,
                parameters=[idem],
                requestBody=_body(_FORM),
            ),
            "get": _op(
                "The newest accepted version: queued, persisted, or needing attention",
                {"200": _json(_REGISTRATION)},
                (401, 403, 404),
                security=_BEARER,
            ),
        },
        "/api/v1/me/photo": {
            "post": _op(
                "Upload the portrait photo (JPEG or PNG, portrait, at least 400×600 px, at most"
                " EXAMREG_PHOTO_MAX_BYTES): decoded and re-encoded without metadata, stored by"
                " its sha256; put the hash in the form's photo_sha256. The same photo again"
                " stores nothing new (200). Codes: photo_too_large (413),"
                " photo_unsupported_type (415), photo_not_an_image, photo_too_small,"
                " photo_landscape, photo_bomb, photo_letterboxed (422)",
                {
                    "201": _json(_PHOTO, "Stored"),
                    "200": _json(_PHOTO, "Already stored: nothing written"),
                },
                (400, 401, 403, 413, 415, 422, 503),
                security=_BEARER,
                requestBody={
                    "required": True,
                    "content": {
                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
            )
        },
        "/api/v1/me/receipts/{receipt_id}": {
            "get": _op(
                "A receipt's status",
                {"200": _json(_RECEIPT)},
                (401, 403, 404),
                security=_BEARER,
                parameters=[_path("receipt_id", {"type": "string", "pattern": "^[0-9A-F]{20}$"})],
            )
        },
        "/api/v1/reference": {
            "get": _op(
                "Reference lists (cacheable, ETag)",
                {"200": _json(_OBJ), "304": {"description": "Not modified"}},
            )
        },
        "/api/v1/window": {
            "get": _op(
                "The registration window and its phase: the nation's for anyone; with a"
                " candidate's session (Bearer or cookie) their own, from their unit, province or"
                " a reopen (`scope`, `reopened_until`)",
                {"200": _json(_WINDOW)},
            )
        },
        "/api/v1/ops/window": {
            "get": _op(
                "The calendar: the national window, every province and unit override, every"
                " reopen (operator, admin)",
                {"200": _json(_OBJ)},
                (401, 403),
                security=_STAFF,
            ),
            "put": _op(
                "Set the trial or official window of the nation, a province or a unit; audited"
                " (operator, admin). In force in every API process within"
                " EXAMREG_WINDOW_CACHE_SECONDS",
                {"200": _json(_OBJ)},
                (400, 401, 403, 413, 415, 422),
                security=_STAFF,
                requestBody=_body(_WINDOW_SET),
            ),
        },
        "/api/v1/ops/window/clear": {
            "post": _op(
                "Remove a scope's window (the wider one applies again); audited",
                {"200": _json(_OBJ)},
                (400, 401, 403, 404, 413, 415, 422),
                security=_STAFF,
                requestBody=_body(_WINDOW_SCOPE),
            )
        },
        "/api/v1/ops/reopens": {
            "get": _op(
                "Every reopen, newest first (`open=1`: only those in force)",
                {"200": _json(_OBJ)},
                (401, 403),
                security=_STAFF,
                parameters=[_query("open")],
            ),
            "post": _op(
                "Reopen registration for named provinces, units and candidates until an"
                " instant, with a reason; audited (operator, admin)",
                {"201": _json(_OBJ, "Created")},
                (400, 401, 403, 413, 415, 422),
                security=_STAFF,
                requestBody=_body(_REOPEN),
            ),
        },
        "/api/v1/ops/reopens/{reopen_id}/close": {
            "post": _op(
                "Close a reopen early; audited",
                {"200": _json(_OBJ)},
                (400, 401, 403, 404, 409, 413, 415, 422),
                security=_STAFF,
                parameters=[_path("reopen_id", _ID)],
                requestBody=_body(
                    {"type": "object", "required": ["reason"], "properties": {"reason": _REASON}}
                ),
            )
        },
        "/api/v1/ops/lock": {
            "get": _op(
                "The lock report: versions accepted before the national close by province (from"
                " PostgreSQL), those after it (reopened), what is still queued; audited",
                {"200": _json(_OBJ)},
                (401, 403, 503),
                security=_STAFF,
            )
        },
        "/api/v1/ops/capacity": {
            "get": _op(
                "Capacity forecast: arrival and drain rates, backlog, time to the shedding limit,"
                " backlog projected to the window's close, writers and API workers needed;"
                " the raw numbers and, in `display`, the same figures in words"
                " (operator, admin; docs/capacity.md)",
                {"200": _json(_OBJ)},
                (401, 403, 422, 503),
                security=_STAFF,
                parameters=[
                    {
                        "name": "target_seconds",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 1, "maximum": 86400},
                    }
                ],
            )
        },
        "/api/v1/ops/reconcile": {
            "get": _op(
                "The last reconciliation's report (counts by kind: queued, queued_over_limit,"
                " dead_lettered, missing, version_mismatch; a sample of each) and whether one"
                " runs now (operator, admin; docs/runbook.md)",
                {"200": _json(_OBJ)},
                (401, 403, 503),
                security=_STAFF,
            ),
            "post": _op(
                "Start a reconciliation in the background, one at a time; audited with the reason"
                " (operator, admin)",
                {"202": _json(_OBJ, "Started")},
                (401, 403, 409, 422, 503),
                security=_STAFF,
                parameters=[
                    {
                        "name": "max_queued_age",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0, "maximum": 86400},
                    },
                    {
                        "name": "reason",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 500},
                    },
                ],
            ),
        },
        "/healthz": {"get": _op("Process alive", {"200": _json(_OBJ)})},
        "/readyz": {"get": _op("Redis and PostgreSQL reachable", {"200": _json(_OBJ)}, (503,))},
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {"get": _op("This document", {"200": _json(_OBJ)})},
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "examreg API",
            "version": "1.0.0",
            "description": "Online registration for Vietnam's national high-school graduation exam."
            " "
            "Errors are application/problem+json with a stable `code`. Any request may also get "
            "400 `untrusted_host` (a Host header not in EXAMREG_TRUSTED_HOSTS), 405 with `Allow`, "
            "408 `request_timeout` (headers too slow) or 431 `headers_too_large`. Until an issued"
            " (or reset) password is replaced, every operation that needs a session answers 403"
            " `password_change_required`, except the password change and the logout.",
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "examreg_session"},
            },
            "responses": {
                "Problem": {
                    "description": "An error with a machine code",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["code", "status", "title"],
                                "properties": {
                                    "code": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "title": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "errors": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "field": {"type": "string"},
                                                "code": {"type": "string"},
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            }
                        }
                    },
                }
            },
        },
    }
