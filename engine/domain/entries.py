"""Stream entries and history rows: the pure mapping between what the API enqueues and what lands.

Owns the shape of a stream entry (field names, encoding) and its translation into a row of
`registration_versions`. No IO here: `engine.adapters.streams` writes entries,
`engine.runtime.writer` reads them and calls `to_row`, `engine.adapters.store` copies the rows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TypedDict

import orjson


class EntryFields(TypedDict):
    """The fields of one stream entry (all strings on the wire)."""

    cid: str  # candidate_id
    v: str  # version, assigned by the enqueue script
    rid: str  # receipt id
    key: str  # Idempotency-Key
    hash: str  # SHA-256 of the canonical form
    phase: str  # trial | official
    at: str  # accepted_at, ISO 8601 UTC
    form: str  # the normalized form, JSON


class PoisonEntry(ValueError):
    """An entry that can never become a row; it goes to the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One row of `registration_versions` (and the candidate of a `registrations` upsert)."""

    candidate_id: int
    version: int
    receipt_id: str
    idempotency_key: str
    request_hash: str
    phase: str
    form: str
    full_name: str
    shard: int
    stream_id: str
    accepted_at: datetime

    def as_record(self) -> tuple[object, ...]:
        """The tuple in the column order of the staging table (`STAGING_COLUMNS`, the fields'
        order; spelled out, for it runs once per row: a getattr loop was 5% of a writer's CPU)."""
        return (
            self.candidate_id,
            self.version,
            self.receipt_id,
            self.idempotency_key,
            self.request_hash,
            self.phase,
            self.form,
            self.full_name,
            self.shard,
            self.stream_id,
            self.accepted_at,
        )


# The staging table's columns are the row's fields, in their order (schema: staging_versions).
STAGING_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(VersionRow))


def _text(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise PoisonEntry(f"missing field {name!r}")
    return value


def to_row(stream_id: str, shard: int, fields: dict[str, str]) -> VersionRow:
    """Decode one stream entry.

    Raises:
        PoisonEntry: the entry is malformed (it was not written by our enqueue script).
    """
    try:
        candidate_id = int(_text(fields, "cid"))
        version = int(_text(fields, "v"))
        accepted_at = datetime.fromisoformat(_text(fields, "at"))
    except PoisonEntry:
        raise
    except ValueError as exc:
        raise PoisonEntry(f"bad number or time: {exc}") from exc
    if accepted_at.tzinfo is None:
        raise PoisonEntry("accepted_at has no UTC offset")
    # The columns are bigint and integer: out of range would fail in the driver, not the database.
    if not (0 < candidate_id < 2**63 and 0 < version < 2**31):
        raise PoisonEntry("candidate_id or version out of range")
    form_text = _text(fields, "form")
    try:
        form = orjson.loads(form_text)
    except orjson.JSONDecodeError as exc:
        raise PoisonEntry("form is not JSON") from exc
    if not isinstance(form, dict) or not isinstance(form.get("full_name"), str):
        raise PoisonEntry("form is not an object with a full_name")
    phase = _text(fields, "phase")
    if phase not in ("trial", "official"):
        raise PoisonEntry(f"unknown phase {phase!r}")
    return VersionRow(
        candidate_id=candidate_id,
        version=version,
        receipt_id=_text(fields, "rid"),
        idempotency_key=_text(fields, "key"),
        request_hash=_text(fields, "hash"),
        phase=phase,
        form=form_text,
        full_name=form["full_name"],
        shard=shard,
        stream_id=stream_id,
        accepted_at=accepted_at,
    )
