"""`examreg dead-letters list|show|replay`: the operator's commands for registrations the writers
could not store (issue 12).

Owns the wiring and the printing: one PostgreSQL connection and one Redis client, a bound on the
whole command, who the actor is (`--actor`, else the OS user), and the table `list` prints. What
each command does, and its audit row, is `engine.services.dead_letter_desk`'s. Split from
`engine.runtime.cli` by size; errors an operator can fix are `UsageError`s (one line, exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.adapters import backend, streams
from engine.runtime.launch import UsageError, require_urls, with_connection
from engine.services import dead_letter_desk
from engine.services.dead_letter_desk import DeadLetterRefused, Operator
from engine.settings import Settings


def operator_actor(given: str | None) -> str:
    """Who the audit log names: `--actor`, else the OS user running the command."""
    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            given = f"uid:{os.getuid()}"
    actor = given.strip()
    if not 1 <= len(actor) <= 100 or not actor.isprintable():
        raise UsageError("--actor must be 1–100 printable characters")
    return actor


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m{secs:02d}s"


def _print_letters(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no dead letters")
        return
    header = ("ID", "SHARD", "AGE", "CANDIDATE", "VERSION", "RECEIPT", "REASON")
    lines = [
        (
            r["id"],
            str(r["shard"]),
            _age(r["age_seconds"]),
            str(r["candidate_id"] or "-"),
            str(r["version"] or "-"),
            str(r["receipt_id"] or "-"),
            r["reason"],
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]
    for line in [header, *lines]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)),
            line[-1],
        )


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """List, show or replay the entries the writers could not store (audited, issue 12)."""
    dsn, redis_url = require_urls(settings)
    actor = operator_actor(args.actor)

    async def run(conn: backend.Connection) -> Any:
        client = streams.connect(redis_url, timeout=settings.io_timeout_seconds)
        op = Operator(actor, client, conn, settings.stream_shards)
        now = datetime.now(UTC)
        try:
            async with asyncio.timeout(settings.io_timeout_seconds * 6):
                await streams.load_functions(client)  # the replay function, if no API ran yet
                if args.dead_command == "list":
                    return await dead_letter_desk.list_letters(op, args.reason, now)
                if args.dead_command == "show":
                    return await dead_letter_desk.show(op, args.id, args.reason, now)
                return await dead_letter_desk.replay(op, args.id, args.reason, now)
        except DeadLetterRefused as exc:
            raise UsageError(str(exc)) from exc
        except backend.REDIS_ERRORS as exc:
            raise UsageError(f"cannot read the dead letters from Redis: {exc}") from exc
        finally:
            await client.aclose()

    result = asyncio.run(with_connection(dsn, run))
    if args.dead_command == "list" and not args.json:
        _print_letters(result)
    elif args.dead_command == "replay" and not args.json:
        print(
            f"replayed {result['id']} as {result['stream_id']} on shard {result['shard']}"
            f" (candidate {result['candidate_id']}, version {result['version']}); the writers"
            " will store it"
        )
    else:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0
