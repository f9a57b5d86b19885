"""The operator's dead letters: list, show (personal data masked) and replay, each one audited.

Owns what `examreg dead-letters list|show|replay` does (issue 12): an acknowledged registration
the writer could not store waits in a dead-letter stream, the candidate's status says it needs
attention, ExamregDeadLetters fires; once the cause is fixed (a migration, reference data), the
operator replays it. A replay first asks PostgreSQL, in a transaction that is rolled back, whether
the entry would now be written, so a futile replay is refused with the database's reason instead
of dead-lettering again; then it re-enqueues the entry with its original version, receipt and
request (promise 3: the writer's version guard and ON CONFLICT make it safe in any order, twice
or after a newer version), and only then is it removed from the dead-letter stream. Every command
writes an `audit_log` row (role `operator`, the actor in `detail.actor`), refusals too. It must
not read a request or print: `engine.runtime.cli` does that.
"""

from __future__ import annotations

import re
import socket
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from engine.adapters import backend, dead_letters, store, support_store
from engine.adapters.dead_letters import DeadLetter, ReplayRefused
from engine.domain.entries import PoisonEntry, to_row
from engine.errors import InvalidRequest
from engine.services.support_desk import check_reason, mask_national_id, mask_phone

_REF: Final = re.compile(r"([0-9]{1,4}):([0-9]{1,20}-[0-9]{1,20})")
# Free-text fields of the form that are personal data: shown only as their length and the code
# points that explain a refusal (control, format, surrogate, private-use, unassigned).
_MASKED_TEXT: Final = (
    "full_name",
    "email",
    "ethnicity",
    "birthplace",
    "contact_address",
    "class_12",
)
_UNUSUAL: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class DeadLetterRefused(Exception):
    """What the operator asked cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Operator:
    """Who runs the command, and the backends it acts on."""

    actor: str
    redis: backend.Redis
    conn: backend.Connection
    shards: int


async def _audit(
    op: Operator, action: str, candidate_id: int | None, reason: str | None, detail: dict[str, Any]
) -> None:
    known = candidate_id
    if (
        candidate_id is not None
        and await support_store.candidate_school(op.conn, candidate_id) is None
    ):
        known = None  # audit_log.candidate_id is a foreign key: name only roster candidates
    await support_store.audit(
        op.conn,
        staff_id=None,
        role="operator",
        action=action,
        candidate_id=known,
        reason=reason,
        client_addr=None,
        detail={"actor": op.actor, "host": socket.gethostname(), **detail},
    )


def _number(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def _age_seconds(letter: DeadLetter, now: datetime) -> float:
    """Since the 202: what the candidate has been waiting for (the entry's time if unreadable)."""
    try:
        accepted = datetime.fromisoformat(letter.fields.get("at", "")).timestamp()
    except ValueError:
        accepted = int(letter.source_id.split("-")[0] or 0) / 1000 if letter.source_id else 0
    return max(0.0, now.timestamp() - accepted)


def summary(letter: DeadLetter, now: datetime) -> dict[str, Any]:
    """One line of `list`: where, how old, whose (candidate id, version), why; no form data."""
    return {
        "id": letter.ref,
        "shard": letter.shard,
        "age_seconds": round(_age_seconds(letter, now), 1),
        "candidate_id": _number(letter.fields, "cid"),
        "version": _number(letter.fields, "v"),
        "receipt_id": letter.fields.get("rid"),
        "reason": letter.reason,
    }


def mask_text(value: str) -> str:
    """A personal string as its length and the code points that could explain a refusal."""
    unusual = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in _UNUSUAL})
    shown = f"; {', '.join(unusual[:8])}" if unusual else ""
    return f"<masked: {len(value)} characters{shown}>"


def _mask_value(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value if value is None or name not in _MASKED_TEXT else "<masked>"
    if name == "national_id":
        return mask_national_id(value)
    if name == "phone":
        return mask_phone(value)
    if name == "date_of_birth":
        return value[:4] + "-**-**"
    return mask_text(value) if name in _MASKED_TEXT else value


def masked_form(form: Any) -> Any:
    """The form with its personal fields masked (IDs and phones like the desk, text as length)."""
    if not isinstance(form, dict):
        return "<not a form>"
    masked = {name: _mask_value(name, value) for name, value in form.items()}
    residence = form.get("residence")
    if isinstance(residence, dict):
        address = residence.get("address")
        masked["residence"] = {
            **residence,
            "address": mask_text(address) if isinstance(address, str) else address,
        }
    return masked


def details(letter: DeadLetter, now: datetime) -> dict[str, Any]:
    """What `show` prints: the entry with its form's personal data masked."""
    try:
        form: Any = orjson.loads(letter.fields.get("form", ""))
    except orjson.JSONDecodeError:
        form = None
    return {
        **summary(letter, now),
        "source_id": letter.source_id,
        "idempotency_key": letter.fields.get("key"),
        "phase": letter.fields.get("phase"),
        "accepted_at": letter.fields.get("at"),
        "form": masked_form(form),
    }


def parse_ref(ref: str, shards: int) -> tuple[int, str]:
    """`<shard>:<entry id>` as `list` prints it."""
    match = _REF.fullmatch(ref.strip())
    if match is None or int(match[1]) >= shards:
        raise DeadLetterRefused(
            f"{ref!r} is not a dead-letter id: use SHARD:ID as `examreg dead-letters list` prints "
            f"it (shards 0–{shards - 1})"
        )
    return int(match[1]), match[2]


async def list_letters(op: Operator, reason: str | None, now: datetime) -> list[dict[str, Any]]:
    """Every shard's dead letters, oldest first per shard; audited."""
    letters = await dead_letters.listing(op.redis, op.shards)
    await _audit(op, "dead_letter_list", None, reason, {"count": len(letters)})
    return [summary(letter, now) for letter in letters]


async def _letter(op: Operator, ref: str, action: str, reason: str | None) -> DeadLetter:
    shard, entry_id = parse_ref(ref, op.shards)
    letter = await dead_letters.read(op.redis, shard, entry_id)
    if letter is None:
        await _audit(op, action, None, reason, {"dead_letter": ref, "outcome": "not_found"})
        raise DeadLetterRefused(
            f"no dead letter {ref} (replayed already?): see `examreg dead-letters list`"
        )
    return letter


async def show(op: Operator, ref: str, reason: str | None, now: datetime) -> dict[str, Any]:
    """One dead letter, personal data masked; audited."""
    letter = await _letter(op, ref, "dead_letter_show", reason)
    cid = _number(letter.fields, "cid")
    await _audit(op, "dead_letter_show", cid, reason, {"dead_letter": ref, "outcome": "ok"})
    return details(letter, now)


async def replay(op: Operator, ref: str, raw_reason: str, now: datetime) -> dict[str, Any]:
    """Re-enqueue one dead letter for the writers once PostgreSQL would accept it; audited.

    Raises:
        DeadLetterRefused: no usable reason, no such dead letter, a malformed entry, PostgreSQL
            still refuses it (with its SQLSTATE: a candidate gone from the roster is one case),
            or it left the dead-letter stream meanwhile (another operator replayed it).
    """
    try:
        reason = check_reason(raw_reason)
    except InvalidRequest as exc:
        raise DeadLetterRefused(
            "--reason is required: 3–500 characters (the ticket or the fix)"
        ) from exc
    letter = await _letter(op, ref, "dead_letter_replay", reason)
    detail: dict[str, Any] = {"dead_letter": ref, "source_id": letter.source_id}
    try:
        row = to_row(letter.source_id, letter.shard, letter.fields)
    except PoisonEntry as exc:
        await _audit(op, "dead_letter_replay", None, reason, {**detail, "outcome": "malformed"})
        raise DeadLetterRefused(f"{ref} is malformed ({exc}): it cannot be replayed") from exc
    detail |= {"version": row.version, "receipt_id": row.receipt_id}
    refused = await store.refusal(op.conn, [row])
    if refused is not None:
        why = store.refusal_reason(refused)
        await _audit(op, "dead_letter_replay", row.candidate_id, reason, {**detail, "outcome": why})
        raise DeadLetterRefused(
            f"PostgreSQL still refuses {ref} ({why}): fix the cause first (a migration, reference "
            "data), then replay it"
        )
    try:
        # The audit row commits with the replay and is written first, so a database that cannot
        # record it stops the replay; only a COMMIT lost after the Redis call goes unaudited.
        async with op.conn.transaction():
            await _audit(
                op, "dead_letter_replay", row.candidate_id, reason, {**detail, "outcome": "ok"}
            )
            stream_id = await dead_letters.replay(op.redis, letter, row.candidate_id)
    except ReplayRefused as exc:
        await _audit(
            op, "dead_letter_replay", row.candidate_id, reason, {**detail, "outcome": "gone"}
        )
        raise DeadLetterRefused(f"{ref} was not replayed: {exc}") from exc
    return {**summary(letter, now), "stream_id": stream_id}
