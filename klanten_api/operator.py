"""Operator commands: the notification outbox (list, retry, discard, relay) and kanaal registration."""
from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa

from .settings import ConfigError, Settings


def _engine(settings: Settings):
    from storage.database import make_engine
    return make_engine(settings.database_url, pool_size=2, max_overflow=2,
                       network_timeout=settings.db_network_timeout)


def cmd_list(args, settings: Settings) -> int:
    from storage.notificaties import WACHTEND
    from storage.tables import notificatie
    later = notificatie.alias("later")
    # what a failed message holds back: the pending messages of its klant behind it (order per klant)
    achter = (sa.select(sa.func.count()).where(later.c.klant_uuid == notificatie.c.klant_uuid,
                                               later.c.id > notificatie.c.id, later.c.status == WACHTEND)
              .scalar_subquery())
    q = sa.select(notificatie.c.id, notificatie.c.klant_uuid, notificatie.c.status, notificatie.c.pogingen,
                  notificatie.c.laatste_fout, notificatie.c.aangemaakt, notificatie.c.eerste_fout,
                  achter.label("houdt_tegen")).order_by(notificatie.c.id)
    if args.status != "all":
        q = q.where(notificatie.c.status == args.status)
    with _engine(settings).connect() as conn:
        rows = conn.execute(q.limit(args.limit)).all()
    print("id\tklant\tstatus\tpogingen\tlaatste_fout\taangemaakt\teerste_fout\thoudt_tegen")
    for r in rows:
        print(f"{r.id}\t{r.klant_uuid}\t{r.status}\t{r.pogingen}\t{r.laatste_fout}\t{r.aangemaakt}"
              f"\t{r.eerste_fout or ''}\t{r.houdt_tegen}")
    return 0


def _mislukte(args, notificatie):
    from storage.notificaties import MISLUKT
    q = sa.update(notificatie).where(notificatie.c.status == MISLUKT)
    if args.id:
        return q.where(notificatie.c.id.in_(args.id))
    if not args.all_failed:
        raise ConfigError("give --id N (repeatable) or --all-failed")
    return q


def cmd_retry(args, settings: Settings) -> int:
    import datetime as dt
    from storage.notificaties import WACHTEND
    from storage.tables import notificatie
    q = _mislukte(args, notificatie)
    with _engine(settings).begin() as conn:
        # a new start: attempts and the retry horizon count from here
        n = conn.execute(q.values(status=WACHTEND, pogingen=0, laatste_fout="", eerste_fout=None,
                                  volgende_poging=dt.datetime.now(dt.timezone.utc))).rowcount
    print(f"{n} notification(s) queued again")
    return 0


def cmd_discard(args, settings: Settings) -> int:
    """Give up failed messages for good: kept as `discarded`, they no longer hold back their klant's later ones."""
    from storage.notificaties import VERWORPEN
    from storage.tables import notificatie
    q = _mislukte(args, notificatie)
    with _engine(settings).begin() as conn:
        n = conn.execute(q.values(status=VERWORPEN)).rowcount
    print(f"{n} notification(s) discarded")
    return 0


def cmd_relay(args, settings: Settings) -> int:
    import os
    import signal
    import socket
    import threading
    import time

    from notificaties.relay import Relay, SocketWekker
    if not settings.notifications_api_url:
        raise ConfigError("KLANTEN_NOTIFICATIONS_API_URL is not set")
    from .logging import configure_logging
    configure_logging()
    # started by `serve`: woken through the socket it hands over; on its own: polls (KLANTEN_NOTIFICATIONS_POLL)
    wekker = SocketWekker(socket.socket(fileno=args.wekker_fd)) if args.wekker_fd is not None else None
    from . import tracing
    tracing.configureer(settings)        # deliveries continue the traces of the writes (README "Tracing")
    relay = Relay(_engine(settings), settings, wekker=wekker)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    if args.ouder:
        def bewaak_ouder():
            # end with the `serve` that started us, also when it was killed and could not stop us
            while os.getppid() == args.ouder and not relay.gestopt():
                time.sleep(1.0)
            relay.stop()
        threading.Thread(target=bewaak_ouder, name="ouder-bewaker", daemon=True).start()
    try:
        relay.run()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_register_kanaal(args, settings: Settings) -> int:
    """Register the kanalen of this server at the Notificaties API unless they exist (as the reference's command):
    `klanten` (filter subject_type) and `contactmomenten` (filters bronorganisatie, kanaal); or the one named."""
    import requests

    from notificaties.client import NotificatiesApi
    from service.constants import CM_KANAAL, CM_KENMERKEN, KANAAL, KENMERK_SUBJECT_TYPE
    kanalen = {KANAAL: [KENMERK_SUBJECT_TYPE], CM_KANAAL: list(CM_KENMERKEN)}
    if args.notificaties_api_root:
        from dataclasses import replace
        root = args.notificaties_api_root if args.notificaties_api_root.endswith("/") else args.notificaties_api_root + "/"
        settings = replace(settings, notifications_api_url=root)
    if not settings.notifications_api_url:
        raise ConfigError("KLANTEN_NOTIFICATIONS_API_URL is not set (or give --notificaties-api-root)")
    if args.kanaal and args.kanaal not in kanalen:
        raise ConfigError(f"unknown kanaal {args.kanaal!r}; known: {', '.join(kanalen)}")
    base = settings.base_url or "http://localhost:8000"
    api = NotificatiesApi(settings)
    for naam, filters in kanalen.items():
        if args.kanaal and naam != args.kanaal:
            continue
        try:
            if any(isinstance(k, dict) and k.get("naam", naam) == naam for k in api.kanalen(naam)):
                print(f"kanaal {naam!r} already exists")
                continue
            resp = api.maak_kanaal(naam, f"{base}/ref/kanalen/#{naam}", filters)
        except requests.RequestException as exc:
            print(f"klanten-api: the Notificaties API could not be reached: {type(exc).__name__}", file=sys.stderr)
            return 1
        if resp.status_code not in (200, 201):
            print(f"klanten-api: registering kanaal {naam!r} failed: HTTP {resp.status_code}", file=sys.stderr)
            return 1
        print(f"kanaal {naam!r} registered")
    return 0


def add_commands(sub) -> None:
    notif = sub.add_parser("notificaties", help="inspect, retry and discard failed notifications")
    nsub = notif.add_subparsers(dest="notificaties_command", required=True)
    lst = nsub.add_parser("list", help="list outbox messages (default: failed ones)")
    lst.add_argument("--status", choices=["failed", "pending", "sent", "discarded", "all"], default="failed")
    lst.add_argument("--limit", type=int, default=1000)
    lst.set_defaults(func=cmd_list)
    retry = nsub.add_parser("retry", help="queue failed messages again")
    retry.add_argument("--id", type=int, action="append")
    retry.add_argument("--all-failed", action="store_true")
    retry.set_defaults(func=cmd_retry)
    discard = nsub.add_parser("discard", help="give up failed messages (their klant's later messages go out)")
    discard.add_argument("--id", type=int, action="append")
    discard.add_argument("--all-failed", action="store_true")
    discard.set_defaults(func=cmd_discard)
    relay = sub.add_parser("relay", help="run only the notification relay (the server runs one itself)")
    # internal, given by `serve`: its pid, and the wake-up socket its workers send to
    relay.add_argument("--ouder", type=int, default=0, help=argparse.SUPPRESS)
    relay.add_argument("--wekker-fd", type=int, default=None, help=argparse.SUPPRESS)
    relay.set_defaults(func=cmd_relay)
    reg = sub.add_parser("register-kanaal",
                         help="register kanalen 'klanten' and 'contactmomenten' at the Notificaties API")
    reg.add_argument("kanaal", nargs="?")
    reg.add_argument("--notificaties-api-root")
    reg.set_defaults(func=cmd_register_kanaal)
    from .importeren import add_commands as migratie_commands     # import and export (DECISIONS #28)
    migratie_commands(sub)
    sub.add_parser("check", help="check configuration and connections").set_defaults(func=__import__("klanten_api.check").check.cmd_check)
