"""The `examreg` command line (architecture §6.1).

Owns argument parsing and the wiring of each command: embedded services, migrations, the API and
writer process trees, roster import and seeding, and `demo`, which runs them all. Errors a user can
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
from engine.adapters import backend, store, telemetry
from engine.adapters.embedded import EmbeddedServices, ServiceError
from engine.adapters.passwords import make_hasher
from engine.app import create_app
from engine.domain import capacity_report
from engine.runtime import writer
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
from engine.services.roster import import_roster, parse_import, seed
from engine.settings import Settings, SettingsError

log = logging.getLogger("examreg")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s",
        stream=sys.stderr,
    )


# -- services, migrate -------------------------------------------------------------------------


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    services = EmbeddedServices(Path(args.data_dir or settings.data_dir))
    if args.action == "start":
        endpoints = services.start()
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
    return supervise(children(None, 0, args.processes), child_env(settings, settings.data_dir))


def cmd_api_worker(args: argparse.Namespace, settings: Settings) -> int:
    # uvicorn's own fd= option wraps the descriptor as AF_UNIX, so accepted TCP connections would
    # miss TCP_NODELAY and every response would wait ~40 ms for a delayed ACK. socket(fileno=)
    # detects the real family.
    listener = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
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


def cmd_staff_create(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    password = args.password or secrets.token_urlsafe(9)
    school = tuple(args.school.split("-", 1)) if args.school else None
    if args.role == "school" and (school is None or len(school) != 2):
        raise UsageError("a school account needs --school PP-SSS (province and school code)")

    async def run() -> int:
        pool = await store.create_pool(dsn, size=1)
        try:
            return await store.create_staff(
                pool, args.username, make_hasher(settings).hash(password), args.role, school
            )
        finally:
            await pool.close()

    staff_id = asyncio.run(run())
    print(f"staff {args.username} ({args.role}) id={staff_id} password={password}")
    return 0


def cmd_trial_purge(args: argparse.Namespace, settings: Settings) -> int:
    dsn, _ = require_urls(settings)
    history, current = asyncio.run(with_connection(dsn, store.purge_trial))
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
        help="LOAD TESTS ONLY: give every account this password (one shared hash)",
    )
    seed.set_defaults(func=cmd_seed)

    staff = sub.add_parser("staff", help="staff accounts")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    create = staff_sub.add_parser("create")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=["support", "school", "operator", "admin"])
    create.add_argument("--school", default=None, help="PP-SSS, for the school role")
    create.add_argument("--password", default=None)
    create.set_defaults(func=cmd_staff_create)

    trial = sub.add_parser("trial", help="trial-window data")
    trial_sub = trial.add_subparsers(dest="trial_command", required=True)
    trial_sub.add_parser(
        "purge", help="delete registrations made in the trial window"
    ).set_defaults(func=cmd_trial_purge)

    capacity = sub.add_parser("capacity", help="capacity forecast from the streams (Redis)")
    capacity.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    capacity.add_argument("--target-seconds", type=float, default=None, help="accept-to-persist")
    capacity.add_argument("--metrics-dir", default=None, help="default: DATA_DIR/metrics")
    capacity.add_argument("--json", action="store_true", help="the JSON of /api/v1/ops/capacity")
    capacity.set_defaults(func=cmd_capacity)

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
