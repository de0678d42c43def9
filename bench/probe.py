"""Database statements per request, counted in-process (the fallback for pg_stat_statements).

PostgreSQL here does not preload pg_stat_statements (`shared_preload_libraries` is empty), so the
server's statements cannot be counted on the server side without a restart. Instead this probe builds
the real application (`klanten_api.app.create_app`) on the benchmark database with an engine whose
SQLAlchemy events count, per HTTP request: statements sent, transactions ended (COMMIT / ROLLBACK)
and pool checkouts (a connection that rested more than a second is pinged first; under load none is). Requests go through the whole ASGI
stack (starlette TestClient), so authentication, validation and serialisation run as in the server.

List pages are probed with page sizes 10 and 100 (the service's PAGINAGROOTTE, patched for the probe)
and with klanten with and without nested objects, to show whether a page costs a constant number of
statements. Output: JSON on stdout.

Usage: python bench/probe.py DATABASE_URL AUTH_CONFIG CLIENT_ID SECRET
"""
from __future__ import annotations

import json
import sys
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import jwt  # noqa: E402
import sqlalchemy as sa  # noqa: E402


class Teller:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.statements: list[str] = []
        self.einde_tx = 0
        self.checkouts = 0

    def koppel(self, engine: sa.Engine) -> None:
        @sa.event.listens_for(engine, "before_cursor_execute")
        def _stmt(conn, cursor, statement, parameters, context, executemany):
            with self.lock:
                self.statements.append(" ".join(statement.split())[:160])

        # a transaction is counted when its end reaches the database; on an AUTOCOMMIT connection (the reads on
        # PostgreSQL) SQLAlchemy's commit/rollback sends nothing: each statement is its own transaction there
        # (storage.uow switches the psycopg connection of a read itself and marks it schrijven=False in its info)
        def _telt(conn) -> bool:
            if conn.dialect.name == "postgresql" and conn.info.get("schrijven") is False:
                return False
            return conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"

        @sa.event.listens_for(engine, "commit")
        def _commit(conn):
            if _telt(conn):
                with self.lock:
                    self.einde_tx += 1

        @sa.event.listens_for(engine, "rollback")
        def _rollback(conn):
            if _telt(conn):
                with self.lock:
                    self.einde_tx += 1

        @sa.event.listens_for(engine.pool, "checkout")
        def _checkout(dbapi_conn, record, proxy):
            with self.lock:
                self.checkouts += 1


def _kort(statement: str) -> str:
    """SELECT ... FROM klant WHERE ... -> 'SELECT klant WHERE ...' (short enough to read in a report)."""
    woorden = statement.split()
    if woorden and woorden[0] == "SELECT" and "FROM" in woorden:
        i = woorden.index("FROM")
        rest = " ".join(woorden[i + 1:])
        return f"SELECT {'count(*) ' if 'count(' in statement[:40] else ''}FROM {rest}"[:110]
    return statement[:110]


def main() -> int:
    database_url, auth_config, client_id, secret = sys.argv[1:5]
    from klanten_api.app import create_app
    from klanten_api.settings import Settings
    import service.klanten as service_klanten
    from storage.database import make_engine
    from dataset import ContactmomentGenerator, Generator

    settings = Settings.from_env({
        "KLANTEN_DATABASE_URL": database_url, "KLANTEN_AUTH_CONFIG": auth_config,
        "KLANTEN_BASE_URL": "https://klanten.gemeente.example",
        # notifications on (the outbox row is part of every write), relay off (its statements are not a request's)
        "KLANTEN_NOTIFICATIONS_API_URL": "http://127.0.0.1:9/api/v1/", "KLANTEN_NOTIFICATIONS_RELAY": "false",
    })
    engine = make_engine(database_url, pool_size=2, max_overflow=2)
    teller = Teller()
    teller.koppel(engine)
    app = create_app(settings, engine=engine)
    from starlette.testclient import TestClient

    token = jwt.encode({"iss": client_id, "iat": int(time.time()), "client_id": client_id, "user_id": "bench",
                        "user_representation": "Benchmark"}, secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    with engine.connect() as conn:
        def een(where: str) -> str:
            return str(conn.exec_driver_sql(f"SELECT uuid FROM klant WHERE {where} ORDER BY id LIMIT 1").scalar())
        voorbeelden = {
            "natuurlijk_persoon, adres, verblijfsadres": een(
                "subject_type = 'natuurlijk_persoon' AND adres_aanwezig "
                "AND (subject_identificatie::jsonb -> 'verblijfsadres') <> 'null'::jsonb"),
            "natuurlijk_persoon, no adres": een("subject_type = 'natuurlijk_persoon' AND NOT adres_aanwezig"),
            "niet_natuurlijk_persoon": een("subject_type = 'niet_natuurlijk_persoon'"),
            "vestiging, handelsnaam + verblijfsadres": een(
                "subject_type = 'vestiging' AND (subject_identificatie::jsonb -> 'verblijfsadres') <> 'null'::jsonb"),
        }
        cm_voorbeelden = {}
        for label, where in (("with vorig and volgend", "vorig_contactmoment_id IS NOT NULL AND EXISTS (SELECT 1 "
                              "FROM contactmoment v WHERE v.vorig_contactmoment_id = contactmoment.id)"),
                             ("no links", "vorig_contactmoment_id IS NULL AND NOT EXISTS (SELECT 1 FROM contactmoment "
                              "v WHERE v.vorig_contactmoment_id = contactmoment.id)")):
            gevonden = conn.exec_driver_sql(f"SELECT uuid FROM contactmoment WHERE {where} ORDER BY id LIMIT 1").scalar()
            if gevonden is not None:
                cm_voorbeelden[label] = str(gevonden)
        klant_uuid = conn.exec_driver_sql("SELECT uuid FROM klant ORDER BY id LIMIT 1").scalar()
        bsn = conn.exec_driver_sql("SELECT zoek_inp_bsn FROM klant WHERE zoek_inp_bsn IS NOT NULL "
                                   "ORDER BY id LIMIT 1").scalar()

    gen = Generator(seed=99)
    uitkomst: dict[str, dict] = {}

    with TestClient(app, base_url="http://testserver") as client:
        def meet(naam: str, method: str, url: str, body=None, verwacht=200, herhaal: int = 2):
            for _ in range(herhaal):          # the last one counts (the first may warm caches)
                teller.reset()
                resp = client.request(method, url, headers=headers, json=body)
                with teller.lock:
                    stmts = list(teller.statements)
                    tx, co = teller.einde_tx, teller.checkouts
            if resp.status_code != verwacht:
                raise SystemExit(f"probe: {naam}: {method} {url} -> {resp.status_code} {resp.text[:300]}")
            data = resp.json() if resp.content else None
            extra = {}
            if isinstance(data, dict) and "results" in data:
                extra["results"] = len(data["results"])
            uitkomst[naam] = {"statements": len(stmts), "transactions": tx, "checkouts": co,
                              "round_trips_estimate": len(stmts) + 2 * tx, **extra,
                              "sql": [_kort(s) for s in stmts]}
            return data

        for label, uuid in voorbeelden.items():
            meet(f"detail read ({label})", "GET", f"/api/v1/klanten/{uuid}")
        oud = service_klanten.PAGINAGROOTTE
        try:
            for grootte in (10, 100):
                service_klanten.PAGINAGROOTTE = grootte
                meet(f"list page 1, page size {grootte}", "GET", "/api/v1/klanten")
                meet(f"list page 7, page size {grootte}", "GET", "/api/v1/klanten?page=7")
                meet(f"list vestiging (nested objects), page size {grootte}", "GET",
                     "/api/v1/klanten?subjectType=vestiging")
                meet(f"list with adres only (no nested sid parts), page size {grootte}", "GET",
                     "/api/v1/klanten?subjectType=niet_natuurlijk_persoon&adres__landcode=6030")
                meet(f"list page=last, page size {grootte}", "GET", "/api/v1/klanten?page=last")
        finally:
            service_klanten.PAGINAGROOTTE = oud
        meet("list filtered on subjectNatuurlijkPersoon__inpBsn", "GET",
             f"/api/v1/klanten?subjectNatuurlijkPersoon__inpBsn={bsn}")
        body = gen.klant(subject_url=False)
        nieuw = meet("create (no klantnummer: kla-001 generates one)", "POST", "/api/v1/klanten", body, 201, herhaal=1)
        body2 = dict(gen.klant(subject_url=False), klantnummer="B" + str(int(time.time()))[-7:])
        meet("create (client-chosen klantnummer)", "POST", "/api/v1/klanten", body2, 201, herhaal=1)
        pad = nieuw["url"].split("://", 1)[1].split("/", 1)[1]
        meet("PATCH (telefoonnummer)", "PATCH", f"/{pad}", {"telefoonnummer": "0612345678"})
        meet("PATCH (adres part)", "PATCH", f"/{pad}", {"adres": {"straatnaam": "Kerkstraat", "huisnummer": 3}})
        meet("DELETE", "DELETE", f"/{pad}", verwacht=204, herhaal=1)

        # Contactmomenten API
        CM = "/contactmomenten/api/v1"
        for label, uuid in cm_voorbeelden.items():
            meet(f"contactmoment read ({label})", "GET", f"{CM}/contactmomenten/{uuid}")
        if cm_voorbeelden:
            meet("contactmoment list page 1", "GET", f"{CM}/contactmomenten")
            meet("contactmoment list page 7", "GET", f"{CM}/contactmomenten?page=7")
            cm_gen = ContactmomentGenerator(seed=99)
            nieuw_cm = meet("contactmoment create (medewerkerIdentificatie)", "POST", f"{CM}/contactmomenten",
                            cm_gen.contactmoment(), 201, herhaal=1)
            meet("klantcontactmoment create (klant of this server)", "POST", f"{CM}/klantcontactmomenten",
                 {"contactmoment": nieuw_cm["url"], "rol": "gesprekspartner",
                  "klant": f"https://klanten.gemeente.example/api/v1/klanten/{klant_uuid}"}, 201, herhaal=1)
    if getattr(app, "relay", None) is not None:
        app.relay.stop()
    engine.dispose()

    lijst = {k: v["statements"] for k, v in uitkomst.items() if k.startswith("list")}
    cm_lijst = {k: v["statements"] for k, v in uitkomst.items() if k.startswith("contactmoment list")}
    constant = len({v for k, v in lijst.items() if "page=last" not in k}) == 1
    print(json.dumps({"method": "in-process probe (SQLAlchemy events on the real app; pg_stat_statements not "
                                "preloaded)", "list_page_constant": constant,
                      "contactmoment_list_page_constant": len(set(cm_lijst.values())) <= 1, "requests": uitkomst}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
