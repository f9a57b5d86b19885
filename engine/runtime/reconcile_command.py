"""`examreg reconcile`: the proof that every acknowledged registration is in PostgreSQL, the
gate before the unit review (issue 14 item 4).

Owns the wiring and the printing: one Redis client, a small pool, the report as text or JSON,
the audit row (role `operator`, the actor being `--actor` or the OS user), and the exit status:
0 when nothing but versions queued for less than `--max-queued-age` seconds was found, 1 when
anything else was (dead-lettered, missing, a version mismatch, queued too long), 2 when Redis
or PostgreSQL cannot be read. What is checked is `engine.services.reconciliation`'s.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from engine.adapters import backend, store, streams
from engine.domain import reconciliation as rules
from engine.runtime.dead_letter_command import actor_name
from engine.runtime.launch import UsageError, require_urls
from engine.services import activity, reconciliation
from engine.settings import Settings


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Run the reconciliation; print it; exit 1 if anything fails the gate."""
    dsn, redis_url = require_urls(settings)
    actor = actor_name(args.actor)
    if not 0 <= args.max_queued_age <= 86_400 or not 0 <= args.sample <= 100_000:
        raise UsageError("--max-queued-age must be 0–86400 s and --sample 0–100000")

    async def run() -> dict[str, Any]:
        client = streams.connect(redis_url, timeout=settings.io_timeout_seconds * 6)
        try:
            pool = await store.create_pool(
                dsn,
                size=2,
                io_timeout=settings.io_timeout_seconds * 6,
                statement_cache_size=settings.db_statement_cache_size,
            )
            try:
                await streams.load_functions(client)  # the release function, if no API ran yet
                summary = await reconciliation.reconcile(
                    client,
                    pool,
                    settings,
                    max_queued_age=args.max_queued_age,
                    sample=args.sample,
                )
                await activity.record_operator(
                    pool,
                    actor=actor,
                    role="operator",
                    action="reconcile",
                    reason=args.reason,
                    detail=reconciliation.audit_detail(summary),
                )
                return summary
            finally:
                await pool.close()
        finally:
            await client.aclose()

    try:
        summary = asyncio.run(run())
    except backend.BACKEND_ERRORS as exc:
        raise UsageError(f"cannot reach Redis or PostgreSQL: {type(exc).__name__}") from exc
    if args.json:
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        print(rules.render(summary), end="")
    return 0 if summary["ok"] else 1


def add_parser(sub: Any) -> None:
    reconcile = sub.add_parser(
        "reconcile",
        help="prove every acknowledged registration is stored (the gate before unit review)",
    )
    reconcile.add_argument(
        "--max-queued-age",
        type=float,
        default=300.0,
        help="seconds a version may still be queued without failing the gate (default 300)",
    )
    reconcile.add_argument(
        "--sample", type=int, default=20, help="exceptions listed per kind (default 20)"
    )
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")
    reconcile.add_argument("--reason", default=None, help="for the audit log (a ticket)")
    reconcile.add_argument("--actor", default=None, help="who, for the audit log (OS user)")
    reconcile.set_defaults(func=cmd_reconcile)
