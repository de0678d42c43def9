"""`klanten-api`: serve, migrate, token (and the operator commands of the notification outbox)."""
from __future__ import annotations

import argparse
import os
import sys

from .settings import ConfigError, Settings


def _migrate(settings: Settings) -> None:
    """Wait for the database (KLANTEN_DB_WAIT_SECONDS), then bring it to the newest schema."""
    from storage.database import normaliseer_url, wacht_op_database
    from storage.migrate import upgrade
    wacht_op_database(settings.database_url, wacht_seconden=settings.db_wait_seconds,
                      network_timeout=settings.db_network_timeout)
    upgrade(normaliseer_url(settings.database_url))


def _metrics_map(settings: Settings) -> tuple[str, bool]:
    """The directory of prometheus_client's multiprocess files for this `serve` (README "Metrics"): the operator's
    KLANTEN_METRICS_DIR emptied of an earlier run's files, or a fresh private temporary one (removed at the end).
    Set before anything imports prometheus_client, and before the workers and the relay start, so that every
    process of this server writes there. (path, whether we made it)."""
    import glob
    import tempfile
    if settings.metrics_dir is not None:
        pad = str(settings.metrics_dir)
        os.makedirs(pad, exist_ok=True)
        for bestand in glob.glob(os.path.join(pad, "*.db")):
            os.remove(bestand)
        gemaakt = False
    else:
        pad, gemaakt = tempfile.mkdtemp(prefix="klanten-metrics-"), True
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = pad
    return pad, gemaakt


def cmd_serve(args, settings: Settings) -> int:
    metrics_map, metrics_map_gemaakt = _metrics_map(settings)
    import uvicorn
    from .auth import controleer_geheimen, load_applicaties
    from .apis import Layout
    from .http import controleer_publieke_url
    from .logging import configure_logging
    from .transport import uvicorn_opties, verhoog_descriptorlimiet
    controleer_geheimen(settings, load_applicaties(settings.auth_config))   # a bad file stops start-up here
    controleer_publieke_url(settings)
    Layout.from_settings(settings)          # a base path that overlaps another stops start-up here
    configure_logging()
    _migrate(settings)
    # the workers (separate processes from --workers 2 on) end when this process is gone (klanten_api/proces.py)
    os.environ["KLANTEN_SERVE_PID"] = str(os.getpid())
    relay = None
    if settings.notifications_api_url and settings.notifications_relay:
        # one relay process for all workers (notificaties/proces.py); the workers, which read their settings
        # from the environment, run none and wake it through its socket after each commit that queued a message
        from notificaties.proces import RelayProces
        relay = RelayProces().start()
        os.environ["KLANTEN_NOTIFICATIONS_RELAY"] = "false"
        os.environ["KLANTEN_NOTIFICATIONS_RELAY_WEKKER"] = relay.wekker_adres
    verhoog_descriptorlimiet()      # the workers inherit it; KLANTEN_MAX_CONNECTIONS is kept below it
    try:
        if args.workers > 1:
            # serve accepts and hands each connection to the worker with the fewest (klanten_api/verdeler.py)
            from .verdeler import Verdeler
            config = uvicorn.Config("klanten_api.app:create_app_from_env", factory=True, host=args.host,
                                    port=args.port, workers=args.workers, **uvicorn_opties(settings))
            Verdeler(config, config.bind_socket()).run()
        else:
            uvicorn.run("klanten_api.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                        **uvicorn_opties(settings))
    finally:
        if relay is not None:
            relay.stop()
        if metrics_map_gemaakt:
            import shutil
            shutil.rmtree(metrics_map, ignore_errors=True)
    return 0


def cmd_migrate(args, settings: Settings) -> int:
    from .logging import configure_logging
    configure_logging()
    _migrate(settings)
    print("database is at the newest schema")
    return 0


def cmd_token(args, settings: Settings) -> int:
    from .auth import load_applicaties, make_token
    applicaties = load_applicaties(settings.auth_config)
    if not applicaties.configured:
        raise ConfigError("KLANTEN_AUTH_CONFIG is not set: there are no clients to make a token for")
    app = applicaties.get(args.client_id)
    if app is None:
        raise ConfigError(f"client id {args.client_id!r} is not in {settings.auth_config}")
    print(make_token(app, args.client_id, args.user_id, args.user_representation))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="klanten-api", description="Klanten API 1.0 server (KRC)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate the database, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(func=cmd_migrate)
    token = sub.add_parser("token", help="print a ZGW JWT for a configured client")
    token.add_argument("--client-id", required=True)
    token.add_argument("--user-id", default="")
    token.add_argument("--user-representation", default="")
    token.set_defaults(func=cmd_token)
    try:
        from .operator import add_commands
        add_commands(sub)
    except ImportError:
        pass
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except ConfigError as exc:
        print(f"klanten-api: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if settings is None or not _database_onbereikbaar(exc, settings):
            raise
        return 1


def _database_onbereikbaar(exc: Exception, settings: Settings) -> bool:
    """The database could not be reached (at start-up, or lost during the migration): one JSON line on stderr,
    no traceback. Anything else is a bug and keeps its traceback."""
    import logging

    import sqlalchemy.exc as sa_exc
    from storage.database import DatabaseOnbereikbaar, beschrijving
    from .logging import configure_logging
    if isinstance(exc, DatabaseOnbereikbaar):
        reden, extra = exc.reden, {"attempts": exc.pogingen, "waited_seconds": round(exc.gewacht, 1)}
    elif isinstance(exc, sa_exc.OperationalError):
        reden, extra = type(exc.orig).__name__, {}
    else:
        return False
    log = logging.getLogger("klanten_api.database")
    if not log.hasHandlers():
        configure_logging()
    log.error("the database is unreachable: giving up", extra={
        "event": "db_unreachable", "reason": reden, **extra, **beschrijving(settings.database_url)})
    return True


if __name__ == "__main__":
    sys.exit(main())
