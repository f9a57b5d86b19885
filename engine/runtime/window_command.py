"""`examreg window …`, `examreg reopen …` and `examreg lock report`: the season's calendar from a
terminal (issue 14).

Owns the arguments, the wiring (a small PostgreSQL pool as the URL's user, a Redis client for the
lock report) and the printing. What each command does, its checks and its audit row (role
`operator`, `detail.actor` = `--actor` or the OS user) are `engine.services.window`'s and
`engine.services.lock`'s; a refused change prints every field error and exits 2. API processes
pick a change up within `EXAMREG_WINDOW_CACHE_SECONDS`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from engine.adapters import backend, store, streams
from engine.errors import ExamregError, InvalidRequest
from engine.runtime.dead_letter_command import actor_name as _actor
from engine.runtime.launch import UsageError, require_urls
from engine.services import calendar_changes, lock
from engine.services.window import Actor, CalendarCache
from engine.settings import Settings


def add_parsers(sub: Any) -> None:
    """The three command groups, on the CLI's subparsers."""
    win = sub.add_parser("window", help="the window calendar (national, province, unit)")
    win_sub = win.add_subparsers(dest="window_command", required=True)
    show = win_sub.add_parser("show", help="the national window, overrides and reopens")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_window)
    for name, text in (("set", "set a scope's trial or official window"), ("clear", "remove it")):
        command = win_sub.add_parser(name, help=text)
        command.add_argument("--scope", required=True, choices=["national", "province", "unit"])
        command.add_argument("--kind", required=True, choices=["trial", "official"])
        command.add_argument("--province", default=None, help="PP (scope province)")
        command.add_argument("--unit", default=None, help="PP-SSS (scope unit)")
        if name == "set":
            command.add_argument("--opens", default=None, help="ISO 8601, or a date (00:00 +07)")
            command.add_argument("--closes", default=None, help="ISO 8601, or a date (17:00 +07)")
        _audited(command)
        command.set_defaults(func=cmd_window)

    reopen = sub.add_parser("reopen", help="reopen registration for units, provinces, candidates")
    reopen_sub = reopen.add_subparsers(dest="reopen_command", required=True)
    create = reopen_sub.add_parser("create", help="reopen until an instant, with a reason")
    create.add_argument("--province", action="append", default=[], help="PP (repeatable)")
    create.add_argument("--unit", action="append", default=[], help="PP-SSS (repeatable)")
    create.add_argument("--candidate", action="append", default=[], help="candidate id")
    create.add_argument("--until", required=True, help="ISO 8601, or a date (17:00 +07:00)")
    _audited(create)
    listing = reopen_sub.add_parser("list", help="every reopen, newest first")
    listing.add_argument("--open", action="store_true", help="only those in force")
    listing.add_argument("--json", action="store_true")
    close = reopen_sub.add_parser("close", help="end a reopen now, before its time")
    close.add_argument("reopen_id", type=int)
    _audited(close)
    for command in (create, listing, close):
        command.set_defaults(func=cmd_reopen)

    locking = sub.add_parser("lock", help="the national close (the lock)")
    lock_sub = locking.add_subparsers(dest="lock_command", required=True)
    report = lock_sub.add_parser("report", help="what was accepted up to the lock; audited")
    report.add_argument("--actor", default=None, help="who, for the audit log (OS user)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_lock)


def _audited(command: argparse.ArgumentParser) -> None:
    command.add_argument("--reason", required=True, help="for the audit log (a decision, a ticket)")
    command.add_argument("--actor", default=None, help="who, for the audit log (OS user)")
    command.add_argument("--json", action="store_true")


def _run(
    settings: Settings, action: Callable[[backend.Pool, CalendarCache], Awaitable[Any]]
) -> Any:
    dsn, _ = require_urls(settings)

    async def run() -> Any:
        try:
            pool = await store.create_pool(
                dsn,
                size=2,
                io_timeout=settings.io_timeout_seconds,
                statement_cache_size=settings.db_statement_cache_size,
            )
        except backend.POSTGRES_ERRORS as exc:
            raise UsageError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            cache = CalendarCache(pool, settings.window, settings.window_cache_seconds)
            async with asyncio.timeout(settings.io_timeout_seconds * 6):
                return await action(pool, cache)
        except InvalidRequest as exc:
            problems = "; ".join(f"{e.field or 'request'}: {e.message_en}" for e in exc.errors)
            raise UsageError(f"refused: {problems}") from exc
        except ExamregError as exc:
            raise UsageError(f"refused: {exc.detail_en} ({exc.code})") from exc
        finally:
            await pool.close()

    return asyncio.run(run())


def _print(result: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(text)


def _scope_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"scope": args.scope, "kind": args.kind, "reason": args.reason}
    if args.scope == "province":
        body["province_code"] = args.province
    if args.scope == "unit":
        province, _, school = (args.unit or "").partition("-")
        body["province_code"], body["school_code"] = province, school
    return body


def _describe_window(result: dict[str, Any]) -> str:
    n = result["national"]
    lines = [
        f"national  phase {n['phase']}  official {n['opens_at'] or '-'} → {n['closes_at'] or '-'}"
        f"  trial {n['trial_opens_at'] or '-'} → {n['trial_closes_at'] or '-'}",
        f"lock      {n['locks_at'] or 'not set'}",
    ]
    for e in result["entries"]:
        where = e["province_code"] or "nation"
        if e["school_code"]:
            where = f"{e['province_code']}-{e['school_code']}"
        lines.append(
            f"{e['scope']:<9} {where:<7} {e['kind']:<8} {e['opens_at'] or '-'} → "
            f"{e['closes_at'] or '-'}  (by {e['updated_by']})"
        )
    lines.append(f"reopens   {sum(r['state'] == 'open' for r in result['reopens'])} open")
    lines.append(f"API processes apply changes within {result['cache_seconds']:g} s")
    return "\n".join(lines)


def cmd_window(args: argparse.Namespace, settings: Settings) -> int:
    if args.window_command == "show":
        result = _run(settings, lambda pool, cache: calendar_changes.calendar_json(pool, cache))
        _print(result, args.json, _describe_window(result))
        return 0
    actor = Actor(_actor(args.actor), "operator")
    body = _scope_body(args)
    if args.window_command == "set":
        body["opens_at"], body["closes_at"] = args.opens, args.closes
        result = _run(
            settings, lambda pool, cache: calendar_changes.set_window(pool, cache, actor, body)
        )
        w = result["window"]
        text = f"set: {w['scope']} {w['kind']} {w['opens_at'] or '-'} → {w['closes_at'] or '-'}"
    else:
        result = _run(
            settings, lambda pool, cache: calendar_changes.clear_window(pool, cache, actor, body)
        )
        text = f"cleared: {args.scope} {args.kind}"
    _print(result, args.json, text)
    return 0


def _describe_reopen(r: dict[str, Any]) -> str:
    targets = [*r["provinces"], *r["units"], *(f"candidate {c}" for c in r["candidates"])]
    ended = f"  closed {r['closed_at']} by {r['closed_by']}" if r["closed_at"] else ""
    return (
        f"#{r['reopen_id']:<5} {r['state']:<6} until {r['until']}  {', '.join(targets)}"
        f"  — {r['reason']} (by {r['created_by']}){ended}"
    )


def cmd_reopen(args: argparse.Namespace, settings: Settings) -> int:
    if args.reopen_command == "list":

        async def listing(pool: backend.Pool, cache: CalendarCache) -> Any:
            return await calendar_changes.reopens(pool, open_only=args.open)

        rows = _run(settings, listing)
        text = "\n".join(_describe_reopen(r) for r in rows) or "no reopens"
        _print(rows, args.json, text)
        return 0
    actor = Actor(_actor(args.actor), "operator")
    if args.reopen_command == "create":
        body = {
            "provinces": args.province,
            "units": args.unit,
            "candidates": args.candidate,
            "until": args.until,
            "reason": args.reason,
        }
        result = _run(
            settings, lambda pool, cache: calendar_changes.create_reopen(pool, cache, actor, body)
        )
    else:
        body = {"reason": args.reason}
        result = _run(
            settings,
            lambda pool, cache: calendar_changes.close_reopen(
                pool, cache, actor, args.reopen_id, body
            ),
        )
    _print(result, args.json, _describe_reopen(result["reopen"]))
    return 0


def cmd_lock(args: argparse.Namespace, settings: Settings) -> int:
    _, redis_url = require_urls(settings)
    actor = Actor(_actor(args.actor), "operator")

    async def report(pool: backend.Pool, cache: CalendarCache) -> Any:
        client = streams.connect(redis_url, timeout=settings.io_timeout_seconds)
        try:
            return await lock.report(pool, client, settings.stream_shards, cache, actor)
        except backend.REDIS_ERRORS as exc:
            raise UsageError(f"cannot read the streams from Redis: {exc}") from exc
        finally:
            await client.aclose()

    result = _run(settings, report)
    _print(result, args.json, lock.render(result))
    return 0
