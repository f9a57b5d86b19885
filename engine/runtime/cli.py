"""The `examreg` command line (architecture §6.1).

Owns argument parsing and the wiring of each command: embedded services, migrations, the API and
writer process trees, roster import and seeding, and `demo`, which runs them all (the
`dead-letters` commands live in `engine.runtime.dead_letter_command`). Errors a user can
fix are printed as one line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvicorn
import uvloop

from engine import settings as settings_module
from engine.adapters import backend, metrics, store, streams, telemetry
from engine.adapters.embedded import EmbeddedServices, ServiceError
from engine.adapters.passwords import make_hasher
from engine.adapters.sessions import SessionStore
from engine.app import create_app
from engine.domain import capacity_report
from engine.runtime import reconcile_command, writer
from engine.runtime.dead_letter_command import actor_name, cmd_dead_letters
from engine.runtime.demo import run_demo
from engine.runtime.launch import (
    UsageError,
    child_env,
    children,
    listen_socket,
    require_urls,
    supervise,
    with_connection,
)
from engine.runtime.protocol import limited_protocol
from engine.runtime.window_command import add_parsers as add_window_parsers
from engine.services import activity
from engine.services.roster import import_roster, parse_import, seed
from engine.services.staff import ROLES, valid_username
from engine.settings import Settings, SettingsError

log = logging.getLogger("examreg")

# How long an API worker lets requests under way finish after SIGTERM (uvicorn's graceful
# shutdown); the supervisor's STOP_TIMEOUT_SECONDS outlasts it.
API_DRAIN_SECONDS = 10


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s",
        stream=sys.stderr,
    )


# -- services, migrate -------------------------------------------------------------------------


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    services = EmbeddedServices(Path(args.data_dir or settings.data_dir))
    if args.action == "start" and args.cluster:
        endpoints, cluster = services.start_with_cluster()
        print(f"EXAMREG_DATABASE_URL={endpoints.database_url}")
        print(f"EXAMREG_REDIS_URL={cluster.redis_url}")
    elif args.action == "start":
        before = services.endpoints()
        endpoints = services.start()
        if before is not None and before != endpoints:
            print(
                "examreg: a recorded port was taken by another program, so the servers moved:"
                " restart the API and writers with the URLs below",
                file=sys.stderr,
            )
        print(f"EXAMREG_DATABASE_URL={endpoints.database_url}")
        print(f"EXAMREG_REDIS_URL={endpoints.redis_url}")
    elif args.action == "stop":
        services.stop()
        print("stopped (data kept in", services.data_dir, ")")
    else:
        for name, state in services.status().items():
            print(f"{name}: {state}")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    applied = asyncio.run(with_connection(dsn, store.migrate))
    print("applied: " + (", ".join(applied) if applied else "nothing (schema up to date)"))
    return 0


# -- processes ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    require_urls(settings)
    sock = listen_socket(args.host, args.port)
    print(f"examreg API on http://{args.host}:{args.port}/ ({args.workers} workers)", flush=True)
    return supervise(children(sock, args.workers, 0), child_env(settings, settings.data_dir))


def cmd_writer(args: argparse.Namespace, settings: Settings) -> int:
    require_urls(settings)
    env = child_env(settings, settings.data_dir)
    if settings.writer_metrics_port:
        try:
            # All interfaces: the scraper reaches a writer's container or pod by its address.
            every_interface = "0.0.0.0"  # noqa: S104
            metrics.serve_directory(
                Path(env["PROMETHEUS_MULTIPROC_DIR"]), every_interface, settings.writer_metrics_port
            )
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on port {settings.writer_metrics_port}: {exc.strerror}"
            ) from exc
    return supervise(children(None, 0, args.processes), env)


def cmd_api_worker(args: argparse.Namespace, settings: Settings) -> int:
    # uvicorn's own fd= option wraps the descriptor as AF_UNIX, so accepted TCP connections would
    # miss TCP_NODELAY and every response would wait ~40 ms for a delayed ACK. socket(fileno=)
    # detects the real family.
    listener = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        # httptools, with the header deadline and limits uvicorn lacks (issue 12).
        http=limited_protocol(settings),
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=API_DRAIN_SECONDS,
        server_header=False,
        # Forwarded headers are honoured in the app, and only from EXAMREG_TRUSTED_PROXIES
        # (engine.app); uvicorn's own default would trust 127.0.0.1.
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def cmd_writer_process(args: argparse.Namespace, settings: Settings) -> int:
    return uvloop.run(writer.main(settings, args.index, args.of))


# -- roster ------------------------------------------------------------------------------------


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    if args.candidates < 1:
        raise UsageError("--candidates must be at least 1")
    out = Path(args.credentials_out) if args.credentials_out else None
    started = time.monotonic()
    count = asyncio.run(
        with_connection(
            dsn,
            lambda conn: seed(
                conn,
                settings,
                args.candidates,
                out,
                shared_password=args.load_test_password,
                random_seed=args.seed,
            ),
        )
    )
    print(
        f"seeded {count:,} new candidates in {time.monotonic() - started:.1f}s"
        + (f"; logins in {out}" if out else "")
    )
    return 0


def cmd_roster_import(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")

    async def run(conn: backend.Connection) -> int:
        schools = await store.school_codes(conn)
        rows, problems = parse_import(path, schools)
        if problems:
            for p in problems[:200]:
                print(f"{path}:{p.line}: {p.column}: {p.message}", file=sys.stderr)
            print(f"{len(problems)} problem(s); nothing imported", file=sys.stderr)
            return 2
        out = Path(args.credentials_out) if args.credentials_out else None
        credentials = await import_roster(conn, settings, rows, out)
        print(
            f"imported {len(credentials):,} new candidates"
            f" ({len(rows) - len(credentials):,} already present)"
        )
        return 0

    result: int = asyncio.run(with_connection(dsn, run))
    return result


def _staff_school(args: argparse.Namespace) -> tuple[str, str] | None:
    """`--school PP-SSS`: required for the school role, refused for the others."""
    if args.role != "school":
        if args.school:
            raise UsageError(f"--school is for the school role only, not {args.role}")
        return None
    parts = tuple(args.school.split("-", 1)) if args.school else ()
    if len(parts) != 2:
        raise UsageError("a school account needs --school PP-SSS (province and school code)")
    return parts[0], parts[1]


async def _known_school(conn: backend.Connection, school: tuple[str, str] | None) -> None:
    if school is not None and school not in await store.school_codes(conn):
        raise UsageError(f"unknown school {school[0]}-{school[1]}")


def _staff_username(args: argparse.Namespace) -> str:
    if not valid_username(args.username):
        raise UsageError(f"{args.username!r}: a username is 3–40 of a-z, 0-9, '.', '_', '-'")
    return str(args.username)


def cmd_staff_create(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    username, school = _staff_username(args), _staff_school(args)
    password = args.password or secrets.token_urlsafe(9)

    async def run(conn: backend.Connection) -> int | None:
        await _known_school(conn, school)
        password_hash = make_hasher(settings).hash(password)
        return await store.create_staff(conn, username, password_hash, args.role, school)

    staff_id = asyncio.run(with_connection(dsn, run))
    if staff_id is None:
        raise UsageError(
            f"staff {username} already exists; nothing changed"
            " (see `examreg staff set-role`, `disable`, `enable`)"
        )
    print(f"staff {username} ({args.role}) id={staff_id} password={password}")
    return 0


def cmd_staff_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Disable (or, as `enable`, enable again) an account; disabling ends its sessions."""
    dsn, redis_url = require_urls(settings)
    username, disable = _staff_username(args), args.staff_command == "disable"

    async def run(conn: backend.Connection) -> int | None:
        return await store.set_staff_disabled(conn, username, disable)

    staff_id = asyncio.run(with_connection(dsn, run))
    if staff_id is None:
        raise UsageError(f"no staff account {username}")
    if not disable:
        print(f"staff {username} enabled")
        return 0
    try:
        ended = asyncio.run(_end_staff_sessions(settings, redis_url, staff_id))
    except backend.REDIS_ERRORS as exc:
        # Not a failure: every staff request reads the row, so those sessions are refused anyway.
        print(f"staff {username} disabled; its sessions could not be ended now ({exc})")
        return 0
    print(f"staff {username} disabled; {ended} session(s) ended")
    return 0


def cmd_staff_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    """A new password for a staff member who lost theirs: changed at next login, sessions end."""
    dsn, redis_url = require_urls(settings)
    username = _staff_username(args)
    password = args.password or secrets.token_urlsafe(9)
    password_hash = make_hasher(settings).hash(password)

    async def run(conn: backend.Connection) -> int | None:
        return await store.reset_staff_password(conn, username, password_hash)

    staff_id = asyncio.run(with_connection(dsn, run))
    if staff_id is None:
        raise UsageError(f"no staff account {username}")
    try:
        count = asyncio.run(_end_staff_sessions(settings, redis_url, staff_id))
        ended = f"{count} session(s) ended"
    except backend.REDIS_ERRORS as exc:
        # The old sessions still cannot act: they are refused until the new password is changed.
        ended = f"its sessions could not be ended now ({exc})"
    print(f"staff {username} password={password} (to change at next login); {ended}")
    return 0


async def _end_staff_sessions(settings: Settings, redis_url: str, staff_id: int) -> int:
    client = streams.connect(redis_url, timeout=settings.io_timeout_seconds)
    try:
        await streams.load_functions(client)  # revocation is one of its functions
        return await SessionStore(client, settings).revoke_all("staff", staff_id)
    finally:
        await client.aclose()


def cmd_staff_set_role(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    username, school = _staff_username(args), _staff_school(args)

    async def run(conn: backend.Connection) -> int | None:
        await _known_school(conn, school)
        return await store.set_staff_role(conn, username, args.role, school)

    if asyncio.run(with_connection(dsn, run)) is None:
        raise UsageError(f"no staff account {username}")
    where = f" of {school[0]}-{school[1]}" if school else ""
    print(f"staff {username} is now {args.role}{where} (from its next request on)")
    return 0


def cmd_trial_purge(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    actor = actor_name(args.actor)

    async def run(conn: backend.Connection) -> tuple[int, int]:
        # The purge and its audit row commit together: a purge nobody could record does not run.
        async with conn.transaction():
            removed = await store.purge_trial(conn)
            await activity.record_operator(
                conn,
                actor=actor,
                role="admin",
                action="trial_purge",
                reason=args.reason,
                detail={"versions": removed[0], "current_rows": removed[1]},
            )
        return removed

    history, current = asyncio.run(with_connection(dsn, run))
    print(f"purged trial data: {history} versions, {current} current registrations")
    return 0


def cmd_capacity(args: argparse.Namespace, settings: Settings) -> int:
    """Sample Redis twice, `--interval` apart, and print the forecast (docs/capacity.md)."""
    require_urls(settings)
    metrics_dir = Path(args.metrics_dir) if args.metrics_dir else settings.data_dir / "metrics"
    try:
        forecast = asyncio.run(
            telemetry.measure(
                settings,
                interval=args.interval,
                target_seconds=args.target_seconds,
                metrics_dir=metrics_dir if metrics_dir.is_dir() else None,
            )
        )
    except backend.REDIS_ERRORS as exc:
        raise UsageError(f"cannot read the streams from Redis: {exc}") from exc
    if args.json:
        print(orjson.dumps(capacity_report.to_json(forecast), option=orjson.OPT_INDENT_2).decode())
    else:
        print(capacity_report.report(forecast), end="")
    return 0


# -- demo --------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    return run_demo(args, settings)


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="examreg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on the embedded default")
    demo.add_argument("--candidates", type=int, default=200)
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default=None)
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--writers", type=int, default=1)
    demo.set_defaults(func=cmd_demo)

    services = sub.add_parser("services", help="embedded PostgreSQL + Valkey")
    services.add_argument("action", choices=["start", "stop", "status"])
    services.add_argument("--data-dir", default=None)
    services.add_argument(
        "--cluster",
        action="store_true",
        help="start: a Valkey Cluster (3 masters, 1 replica each) instead of the single Valkey",
    )
    services.set_defaults(func=cmd_services)

    sub.add_parser("migrate", help="apply schema/").set_defaults(func=cmd_migrate)

    serve = sub.add_parser("serve", help="API processes")
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)

    writer = sub.add_parser("writer", help="stream writers")
    writer.add_argument("--processes", type=int, default=1)
    writer.set_defaults(func=cmd_writer)

    roster = sub.add_parser("roster", help="school roster")
    roster_sub = roster.add_subparsers(dest="roster_command", required=True)
    imp = roster_sub.add_parser("import", help="import a roster CSV and issue passwords")
    imp.add_argument("file")
    imp.add_argument("--credentials-out", default=None)
    imp.set_defaults(func=cmd_roster_import)

    seed = sub.add_parser("seed", help="synthetic national roster (demos, load tests)")
    seed.add_argument("--candidates", type=int, required=True)
    seed.add_argument("--credentials-out", default=None)
    seed.add_argument("--seed", type=int, default=2026, help="random seed (deterministic roster)")
    seed.add_argument(
        "--load-test-password",
        default=None,
        help="LOAD TESTS ONLY: give every account this password (one shared hash) and no"
        " forced first-login change",
    )
    seed.set_defaults(func=cmd_seed)

    staff = sub.add_parser("staff", help="staff accounts")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    roles = sorted(ROLES)
    create = staff_sub.add_parser("create", help="a new account (an existing one is refused)")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=roles)
    create.add_argument("--school", default=None, help="PP-SSS, for the school role")
    create.add_argument("--password", default=None)
    create.set_defaults(func=cmd_staff_create)
    for action, text in (
        ("disable", "refuse the account's logins and end its sessions"),
        ("enable", "let a disabled account log in again"),
    ):
        toggle = staff_sub.add_parser(action, help=text)
        toggle.add_argument("username")
        toggle.set_defaults(func=cmd_staff_disable)
    reset = staff_sub.add_parser(
        "reset-password", help="a new password, to change at next login; ends the sessions"
    )
    reset.add_argument("username")
    reset.add_argument("--password", default=None)
    reset.set_defaults(func=cmd_staff_reset_password)
    set_role = staff_sub.add_parser("set-role", help="another role (and school) from now on")
    set_role.add_argument("username")
    set_role.add_argument("--role", required=True, choices=roles)
    set_role.add_argument("--school", default=None, help="PP-SSS, for the school role")
    set_role.set_defaults(func=cmd_staff_set_role)

    trial = sub.add_parser("trial", help="trial-window data")
    trial_sub = trial.add_subparsers(dest="trial_command", required=True)
    purge = trial_sub.add_parser("purge", help="delete registrations made in the trial window")
    purge.add_argument("--reason", default=None, help="for the audit log (a ticket)")
    purge.add_argument("--actor", default=None, help="who, for the audit log (OS user)")
    purge.set_defaults(func=cmd_trial_purge)

    capacity = sub.add_parser("capacity", help="capacity forecast from the streams (Redis)")
    capacity.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    capacity.add_argument("--target-seconds", type=float, default=None, help="accept-to-persist")
    capacity.add_argument("--metrics-dir", default=None, help="default: DATA_DIR/metrics")
    capacity.add_argument("--json", action="store_true", help="the JSON of /api/v1/ops/capacity")
    capacity.set_defaults(func=cmd_capacity)

    reconcile_command.add_parser(sub)
    dead = sub.add_parser("dead-letters", help="registrations the writers could not store")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    listing = dead_sub.add_parser("list", help="every shard's dead letters (no personal data)")
    show = dead_sub.add_parser("show", help="one dead letter, personal data masked")
    show.add_argument("id", help="SHARD:ID as `list` prints it")
    replay = dead_sub.add_parser("replay", help="re-enqueue one for the writers, after a fix")
    replay.add_argument("id", help="SHARD:ID as `list` prints it")
    for command in (listing, show, replay):
        command.add_argument(
            "--reason", required=command is replay, help="for the audit log (a ticket, the fix)"
        )
        command.add_argument("--actor", default=None, help="who, for the audit log (OS user)")
        command.add_argument("--json", action="store_true", help="print JSON")
        command.set_defaults(func=cmd_dead_letters)

    add_window_parsers(sub)  # window, reopen, lock

    api_worker = sub.add_parser("_api-worker", help=argparse.SUPPRESS)
    api_worker.add_argument("--fd", type=int, required=True)
    api_worker.set_defaults(func=cmd_api_worker)
    writer_process = sub.add_parser("_writer-process", help=argparse.SUPPRESS)
    writer_process.add_argument("--index", type=int, required=True)
    writer_process.add_argument("--of", type=int, required=True)
    writer_process.set_defaults(func=cmd_writer_process)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_module.load()
        _setup_logging(settings.log_level)
        result: int = args.func(args, settings)
        return result
    except (UsageError, SettingsError, ServiceError) as exc:
        print(f"examreg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
