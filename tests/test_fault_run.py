"""The fault run of issue #13 ("Proof"): writes keep going through a Notificaties API outage, relay kills,
worker kills and two instances on one database, and afterwards every committed write is counted.

Real parts only: two `klanten-api serve --workers 2` processes on ONE fresh PostgreSQL database (as two machines
behind a proxy: the same KLANTEN_BASE_URL), one loopback Notificaties API of the test's own (`Nrc`: a threaded
HTTP server that records every POSTed body and can be healthy with 50-200 ms latency, answer 503, refuse
connections or hang), real JWTs, real kill -9.

The run (seconds after the writers start; `SCENARIO`):
  healthy -> creates whose subject check (kla-002, a slow loopback subject) keeps them in flight, and kill -9 a
  worker of A meanwhile -> NRC answers 503 -> NRC refuses connections (listening socket closed, open connections
  cut) -> the same kill for a worker of B -> NRC hangs (reads the request, never answers) for longer than a
  relay's lease -> kill -9 the relay of B -> NRC healthy again -> kill -9 the relay of A while it drains the
  backlog -> writers stop -> wait (bounded) until the outbox has no pending message.
Then it counts, from the writers' own records, the database and what the NRC accepted:
  - every committed write (201/200/204; a write whose answer was lost to a kill is decided by the database: each
    write carries a unique websiteUrl, and a klant gets no further writes after an unanswered one) has exactly
    one audit row (matched by actie and websiteUrl; a delete has none and removes its klant's rows, README
    "Audit trail and notifications") and exactly one outbox message;
  - every outbox message was accepted by the NRC exactly once, in order per klant; a second delivery is allowed
    only for the one message whose POST was in flight on a killed relay's connection at the moment of the kill
    (the relay is stopped with SIGSTOP, its connections to the NRC read from /proc, then SIGKILL);
  - the NRC accepted nothing that is not a committed write's message; nothing is left pending or failed;
  - reads stayed served (no 5xx, p99 below READ_P99), writes never answered 5xx, and a request failed at the
    client only when a worker was killed while it was in flight; both servers kept 2 workers and 1 relay.
Every finding is collected and reported together, with a summary of the counts.

PostgreSQL only: two instances on one SQLite file across processes is not a production set-up.
Run it alone: KLANTEN_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
              .venv/bin/python -m pytest tests/test_fault_run.py -q -s     (about 1-2 minutes; -s shows the summary)
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import socketserver
import threading
import time
import uuid as uuid_mod
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy as sa

from conftest import eigen_postgres_database, token, wait_for, zonder_nummer
from processen import ROOT, ServeProces, levend, socket_inodes, tcp_verbindingen
from storage.database import normaliseer_url
from storage.migrate import upgrade
from storage.tables import audittrail, klant, notificatie

pytestmark = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"),
    reason="two instances on one database need PostgreSQL (set KLANTEN_TEST_DATABASE_URL=postgresql://...)")

BASE_URL = "http://klanten.fault.test"      # both instances, as behind one proxy: one URL per klant
LATENTIE = (0.05, 0.2)                       # seconds a healthy NRC takes per notification
RELAY_ENV = {
    "KLANTEN_NOTIFICATIONS_POLL": "0.5",
    "KLANTEN_NOTIFICATIONS_BACKOFF": "0.1",
    "KLANTEN_NOTIFICATIONS_TIMEOUT": "2",
    # keep retrying for an hour (issue #13); KLANTEN_NOTIFICATIONS_MAX_ATTEMPTS stays at its default on purpose
    "KLANTEN_NOTIFICATIONS_RETRY_HORIZON": "3600",
}
SCHRIJVERS, LEZERS = 4, 2
SCHRIJF_PAUZE = (0.3, 0.9)                  # seconds between a writer's writes: what two relays at 50-200 ms drain
LEES_PAUZE = (0.05, 0.2)
REQUEST_TIMEOUT = 15.0
DRAIN_TIMEOUT = 90.0                        # backoff after a long outage may reach tens of seconds
READ_P99 = 5.0
KILL_MARGE = 1.0                            # a request failed by a worker kill was in flight then (+/- this)
MIDDEN_IN_BATCH = 3                         # a relay is killed mid-delivery once it delivered this many ...
BEZIG_WACHT = 6.0                           # ... or after this many seconds
WERKERS_TERUG = 30.0                        # seconds for uvicorn / serve to replace what was killed

TRAAG = 2.5                                 # seconds the subject server takes (kla-002 runs inside a create)
TRAGE_CREATES = 4                           # in flight on the workers of an instance when one of them is killed

# (seconds after the writers started, step). The hang outlasts a relay's lease (2 x timeout + 10 s = 14 s), so a
# batch claimed as it starts is still being worked through when its lease ends and the other instance's relay
# may claim the same messages.
SCENARIO = [
    (3.8, "traag_a"),
    (5, "kill_worker_a"),
    (7, "nrc_503"),
    (11, "nrc_weigeren"),
    (13.8, "traag_b"),
    (15, "kill_worker_b"),
    (16, "nrc_hangen"),
    (19, "kill_relay_b"),
    (36, "nrc_gezond"),
    (37, "kill_relay_a"),                   # once it is delivering the backlog (`kill_relay`)
    (46, "stop_schrijvers"),
]


# ---------------------------------------------------------------- the Notificaties API of the test
@dataclass
class Ontvangst:
    aankomst: float          # time.monotonic() when the request was read
    poort: int               # the client's port: which connection (and so which relay) sent it
    tekst: str
    status: int | None = None    # 201 accepted (delivered), 503, None: hung or cut, never answered
    besluit: float = 0.0


class Nrc:
    """A Notificaties API on loopback whose behaviour the test switches: gezond / 503 / weigeren / hangen."""

    def __init__(self):
        self.modus = "gezond"
        self.ontvangen: list[Ontvangst] = []
        self.lock = threading.Lock()
        self.verbindingen: set[socket.socket] = set()
        self.server: socketserver.ThreadingTCPServer | None = None
        self.thread: threading.Thread | None = None
        self.poort = 0
        self._open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.poort}/api/v1/"

    def _open(self) -> None:
        nrc = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"       # keep-alive, as the relay's http.client connection expects

            def setup(self):
                super().setup()
                with nrc.lock:
                    nrc.verbindingen.add(self.connection)

            def finish(self):
                with nrc.lock:
                    nrc.verbindingen.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

            def do_POST(self):
                tekst = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
                o = Ontvangst(time.monotonic(), self.client_address[1], tekst)
                modus = nrc.modus
                with nrc.lock:
                    nrc.ontvangen.append(o)
                if modus == "gezond":
                    time.sleep(random.uniform(*LATENTIE))
                    o.status, o.besluit = 201, time.monotonic()     # accepted: from here on it counts as delivered
                    self._antwoord(201, tekst.encode())
                elif modus == "503":
                    o.status, o.besluit = 503, time.monotonic()
                    self._antwoord(503, b'{"detail": "tijdelijk niet beschikbaar"}')
                else:                                   # hangen (or a request that slipped in while refusing)
                    einde = time.monotonic() + 60
                    while nrc.modus == modus and time.monotonic() < einde:
                        time.sleep(0.05)
                    self.close_connection = True        # never answered

            def _antwoord(self, status: int, body: bytes):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True        # the relay was killed meanwhile

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address):
                pass                                    # cut connections are part of the run

        self.server = Server(("127.0.0.1", self.poort), Handler)
        self.poort = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _sluit(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            open_ = list(self.verbindingen)
        for sock in open_:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def zet(self, modus: str) -> None:
        vorige, self.modus = self.modus, modus
        if modus == "weigeren":
            self._sluit()                       # connecting is refused, kept-alive connections are cut
        elif vorige == "weigeren":
            self._open()                        # the same port again

    def stop(self) -> None:
        self.modus = "gestopt"
        self._sluit()

    def geaccepteerd(self) -> list[Ontvangst]:
        with self.lock:
            return [o for o in self.ontvangen if o.status == 201]


class TraagSubject:
    """A subject URL (kla-002) that answers 200 after TRAAG seconds: a create that names it is in flight for that
    long before its transaction starts, so killing its worker then must leave nothing behind."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(TRAAG)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass                                # the worker that asked was killed meanwhile

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/subject"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- what the clients saw
@dataclass
class Schrijf:
    actie: str                 # create / partial_update / destroy
    marker: str                # the websiteUrl this write sets (create, partial_update)
    instantie: str
    start: float
    uuid: str | None = None
    eind: float = 0.0
    status: int | None = None
    fout: str = ""
    vastgelegd: bool | None = None
    beslist_door: str = "antwoord"


@dataclass
class Lees:
    soort: str
    instantie: str
    start: float
    eind: float = 0.0
    status: int | None = None
    fout: str = ""


@dataclass
class Kill:
    wat: str                   # worker / relay
    instantie: str
    pid: int
    moment: float
    poorten: set[int] = field(default_factory=set)      # relay: its connections to the NRC at the kill


OK_STATUS = {"create": 201, "partial_update": 200, "destroy": 204}


def sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def auth() -> dict:
    return {"Authorization": f"Bearer {token()}"}


def uuid_van(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def schrijver(nr: int, instanties: dict[str, ServeProces], stop: threading.Event, uit: list[Schrijf],
              aangemaakt: list[str]) -> None:
    rng = random.Random(nr)
    namen = sorted(instanties)
    sessies = {naam: sessie() for naam in namen}
    eigen: list[str] = []              # this writer's klanten: no one else writes them, so their order is ours
    i = 0
    while not stop.is_set():
        i += 1
        naam = namen[(nr + i) % len(namen)]
        root, s = instanties[naam].root, sessies[naam]
        keuze = rng.random()
        actie = ("create" if len(eigen) < 2 or keuze < 0.35 else "partial_update" if keuze < 0.87 else "destroy")
        w = Schrijf(actie, f"http://fout.example/{uuid_mod.uuid4().hex}", naam, time.monotonic())
        if actie != "create":
            w.uuid = rng.choice(eigen)
        try:
            if actie == "create":
                r = s.post(f"{root}/klanten", json=zonder_nummer(websiteUrl=w.marker), headers=auth(),
                           timeout=REQUEST_TIMEOUT)
            elif actie == "partial_update":
                r = s.patch(f"{root}/klanten/{w.uuid}", json={"websiteUrl": w.marker}, headers=auth(),
                            timeout=REQUEST_TIMEOUT)
            else:
                r = s.delete(f"{root}/klanten/{w.uuid}", headers=auth(), timeout=REQUEST_TIMEOUT)
            w.status = r.status_code
            if r.status_code == OK_STATUS[actie]:
                w.vastgelegd = True
                if actie == "create":
                    w.uuid = uuid_van(r.json()["url"])
                    eigen.append(w.uuid)
                    aangemaakt.append(w.uuid)
                elif actie == "destroy":
                    eigen.remove(w.uuid)
        except requests.RequestException as exc:
            w.fout = type(exc).__name__
        w.eind = time.monotonic()
        if w.vastgelegd is None and w.uuid in eigen:
            eigen.remove(w.uuid)       # outcome unknown to us: the database decides, so this klant gets no more writes
        uit.append(w)
        stop.wait(rng.uniform(*SCHRIJF_PAUZE))


def trage_create(naam: str, srv: ServeProces, subject: str, uit: list[Schrijf]) -> None:
    """One create that waits TRAAG seconds for its subject check: the worker killed meanwhile may hold it."""
    w = Schrijf("create", f"http://fout.example/{uuid_mod.uuid4().hex}", naam, time.monotonic())
    try:
        with sessie() as s:
            r = s.post(f"{srv.root}/klanten", json=zonder_nummer(subject=subject, websiteUrl=w.marker),
                       headers=auth(), timeout=REQUEST_TIMEOUT)
        w.status = r.status_code
        if r.status_code == 201:
            w.vastgelegd, w.uuid = True, uuid_van(r.json()["url"])
    except requests.RequestException as exc:
        w.fout = type(exc).__name__
    w.eind = time.monotonic()
    uit.append(w)


def lezer(nr: int, instanties: dict[str, ServeProces], stop: threading.Event, uit: list[Lees],
          aangemaakt: list[str]) -> None:
    rng = random.Random(100 + nr)
    namen = sorted(instanties)
    sessies = {naam: sessie() for naam in namen}
    while not stop.is_set():
        naam = rng.choice(namen)
        detail = bool(aangemaakt) and rng.random() < 0.6
        lees = Lees("detail" if detail else "lijst", naam, time.monotonic())
        pad = f"/klanten/{rng.choice(aangemaakt)}" if detail else "/klanten"
        try:
            lees.status = sessies[naam].get(f"{instanties[naam].root}{pad}", headers=auth(),
                                            timeout=REQUEST_TIMEOUT).status_code
        except requests.RequestException as exc:
            lees.fout = type(exc).__name__
        lees.eind = time.monotonic()
        uit.append(lees)
        stop.wait(rng.uniform(*LEES_PAUZE))


# ---------------------------------------------------------------- processes
def nrc_poorten(pid: int, nrc_poort: int) -> set[int]:
    """Local ports of the TCP connections of process `pid` to the NRC (from /proc)."""
    inodes = socket_inodes(pid)
    return {lokaal for lokaal, ver, _, inode in tcp_verbindingen() if inode in inodes and ver == nrc_poort}


def kill_relay(naam: str, srv: ServeProces, nrc: Nrc, *, bezig: bool) -> Kill:
    """kill -9 the relay of `srv`; with `bezig`, once it is delivering a backlog (it had MIDDEN_IN_BATCH messages
    accepted in the last 1.5 s, or BEZIG_WACHT seconds passed): then a batch is half done when it dies."""
    pid = wait_for(srv.relay_pids, wat=f"the relay of {naam}")[0]
    einde = time.monotonic() + (BEZIG_WACHT if bezig else 0)
    while time.monotonic() < einde:
        poorten, nu = nrc_poorten(pid, nrc.poort), time.monotonic()
        if sum(o.poort in poorten and o.besluit > nu - 1.5 for o in nrc.geaccepteerd()) >= MIDDEN_IN_BATCH:
            break
        time.sleep(0.05)
    os.kill(pid, signal.SIGSTOP)                   # frozen: it opens no new connection while we look
    poorten = nrc_poorten(pid, nrc.poort)
    moment = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return Kill("relay", naam, pid, moment, poorten)


def kill_worker(naam: str, srv: ServeProces) -> Kill:
    pid = sorted(srv.worker_pids())[0]
    moment = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return Kill("worker", naam, pid, moment)


@pytest.fixture
def opstelling(auth_config, tmp_path):
    """(url of the fresh database, the NRC, the slow subject, {"A": serve, "B": serve})."""
    with eigen_postgres_database("foutrun") as (url, _admin):
        upgrade(url)
        nrc, subject = Nrc(), TraagSubject()
        env = {"KLANTEN_SUBJECT_ALLOWED_HOSTS": "127.0.0.1", "KLANTEN_DATABASE_URL": url,
               "KLANTEN_AUTH_CONFIG": str(auth_config),
               # every writer uses the one test client: let all slow creates of a worker be in flight at its kill
               # (the per-client cap of kla-002 checks would answer two of them 429 at once)
               "KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT": str(TRAGE_CREATES),
               "KLANTEN_DEVELOPMENT": "true",      # accepts the suite's recognisable JWT secret, changes nothing else
               "KLANTEN_BASE_URL": BASE_URL, "KLANTEN_NOTIFICATIONS_API_URL": nrc.url,
               "PYTHONPATH": str(ROOT),            # this checkout's code, also in the relay `serve` starts
               **RELAY_ENV}
        instanties = {}
        try:
            for naam in ("A", "B"):
                instanties[naam] = ServeProces(env, tmp_path / f"serve-{naam}.log", workers=2)
            for srv in instanties.values():
                srv.wacht_tot_klaar()
            yield url, nrc, subject, instanties
        finally:
            for srv in instanties.values():
                srv.stop()
            nrc.stop()
            subject.stop()


# ---------------------------------------------------------------- the run
def p(waarden: list[float], q: float) -> float:
    if not waarden:
        return 0.0
    waarden = sorted(waarden)
    return waarden[min(len(waarden) - 1, int(q * len(waarden)))]


def test_fault_run_every_committed_write_is_audited_and_notified_once(opstelling):
    url, nrc, subject, instanties = opstelling
    stop_schrijvers, stop_lezers = threading.Event(), threading.Event()
    schrijfs: list[Schrijf] = []
    leest: list[Lees] = []
    aangemaakt: list[str] = []
    kills: list[Kill] = []
    gebeurd: list[tuple[float, str]] = []

    threads = [threading.Thread(target=schrijver, args=(n, instanties, stop_schrijvers, schrijfs, aangemaakt),
                                daemon=True) for n in range(SCHRIJVERS)]
    threads += [threading.Thread(target=lezer, args=(n, instanties, stop_lezers, leest, aangemaakt), daemon=True)
                for n in range(LEZERS)]
    t0 = time.monotonic()
    drain_duur = None
    try:
        for t in threads:
            t.start()
        for op, stap in SCENARIO:
            time.sleep(max(0.0, t0 + op - time.monotonic()))
            gebeurd.append((time.monotonic() - t0, stap))
            if stap.startswith("traag_"):
                naam = stap[-1].upper()
                traag = [threading.Thread(target=trage_create, args=(naam, instanties[naam], subject.url, schrijfs),
                                          daemon=True) for _ in range(TRAGE_CREATES)]
                for t in traag:
                    t.start()
                threads += traag
            elif stap.startswith("nrc_"):
                nrc.zet(stap[4:])
            elif stap.startswith("kill_worker_"):
                naam = stap[-1].upper()
                kills.append(kill_worker(naam, instanties[naam]))
            elif stap.startswith("kill_relay_"):
                naam = stap[-1].upper()
                kills.append(kill_relay(naam, instanties[naam], nrc, bezig=nrc.modus == "gezond"))
            elif stap == "stop_schrijvers":
                stop_schrijvers.set()
        for t in threads[:SCHRIJVERS] + threads[SCHRIJVERS + LEZERS:]:
            t.join(REQUEST_TIMEOUT + 5)
        eind_schrijven = time.monotonic()
        # the outbox drains (bounded): nothing pending any more
        engine = sa.create_engine(normaliseer_url(url), poolclass=sa.pool.NullPool)
        try:
            deadline = eind_schrijven + DRAIN_TIMEOUT
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if not conn.execute(sa.select(sa.func.count()).where(notificatie.c.status == "pending")
                                        ).scalar_one():
                        drain_duur = time.monotonic() - eind_schrijven
                        break
                time.sleep(0.5)
            time.sleep(1.0)                 # answers still on the wire arrive
        finally:
            stop_lezers.set()
            for t in threads[SCHRIJVERS:SCHRIJVERS + LEZERS]:
                t.join(REQUEST_TIMEOUT + 5)
        gebeurd.append((time.monotonic() - t0, "drained" if drain_duur is not None else "drain timed out"))

        # what is left of the processes: each server replaced what was killed
        procesfouten = []
        deadline = time.monotonic() + WERKERS_TERUG
        for naam, srv in instanties.items():
            gedood = {k.pid for k in kills if k.instantie == naam}
            while time.monotonic() < deadline and not (
                    len(srv.worker_pids()) == 2 and len(srv.relay_pids()) == 1
                    and not gedood & (set(srv.worker_pids()) | set(srv.relay_pids()))):
                time.sleep(0.2)
            if srv.proc.poll() is not None:
                procesfouten.append(f"serve {naam} exited with {srv.proc.returncode}")
            workers, relays = srv.worker_pids(), srv.relay_pids()
            if len(workers) != 2 or gedood & set(workers):
                procesfouten.append(f"serve {naam}: workers {workers} after killing {sorted(gedood)}")
            if len(relays) != 1 or gedood & set(relays):
                procesfouten.append(f"serve {naam}: relays {relays} after killing {sorted(gedood)}")
            assert all(not levend(k.pid) for k in kills if k.instantie == naam)

        with engine.connect() as conn:
            klanten = {str(r.uuid): r.website_url for r in conn.execute(sa.select(klant.c.uuid, klant.c.website_url))}
            audit_rijen = conn.execute(sa.select(audittrail.c.hoofd_object, audittrail.c.actie,
                                                 audittrail.c.wijzigingen)
                                       .order_by(audittrail.c.id)).all()
            outbox = conn.execute(sa.select(notificatie.c.id, notificatie.c.klant_uuid, notificatie.c.status,
                                            notificatie.c.bericht, notificatie.c.pogingen, notificatie.c.laatste_fout)
                                  .order_by(notificatie.c.id)).all()
        engine.dispose()
    finally:
        stop_schrijvers.set()
        stop_lezers.set()

    bevindingen, rapport = tellen(t0, schrijfs, leest, kills, gebeurd, nrc, klanten, audit_rijen, outbox,
                                  drain_duur, procesfouten, instanties)
    print(rapport)
    assert not bevindingen, "\n".join(["fault run findings:", *(f"- {b}" for b in bevindingen), rapport])


# ---------------------------------------------------------------- counting
def tellen(t0, schrijfs, leest, kills, gebeurd, nrc, klanten, audit_rijen, outbox, drain_duur, procesfouten,
           instanties) -> tuple[list[str], str]:
    bevindingen: list[str] = list(procesfouten)
    rel = lambda t: f"{t - t0:.1f}s"                        # noqa: E731
    per_marker = {website: u for u, website in klanten.items()}

    # 1. which writes committed: the answer, or (no answer / an error answer) the database
    for w in schrijfs:
        if w.vastgelegd:
            continue
        w.beslist_door = "database"
        if w.actie == "create":
            w.uuid = per_marker.get(w.marker)
            w.vastgelegd = w.uuid is not None
        elif w.actie == "partial_update":
            w.vastgelegd = klanten.get(w.uuid) == w.marker
        else:
            w.vastgelegd = w.uuid not in klanten
        if w.status is not None and w.vastgelegd:
            bevindingen.append(f"{w.actie} {w.uuid} answered {w.status} but is committed")
    vastgelegd: dict[str, list[Schrijf]] = defaultdict(list)
    for w in sorted(schrijfs, key=lambda w: w.start):      # one writer per klant: start order is commit order
        if w.vastgelegd:
            vastgelegd[w.uuid].append(w)
    alle_vastgelegd = [w for ws in vastgelegd.values() for w in ws]

    # 2. the clients: writes never 5xx, reads served; a failure at the client only while a worker died
    def door_kill(x) -> bool:
        return any(k.wat == "worker" and x.start - KILL_MARGE <= k.moment <= x.eind + KILL_MARGE for k in kills)

    for soort, lijst in (("write", schrijfs), ("read", leest)):
        vijfxx = [x for x in lijst if x.status is not None and x.status >= 500]
        if vijfxx:
            bevindingen.append(f"{len(vijfxx)} {soort}s answered 5xx: "
                               f"{Counter(x.status for x in vijfxx)} at {[rel(x.start) for x in vijfxx[:5]]}")
        los = [x for x in lijst if x.fout and not door_kill(x)]
        if los:
            bevindingen.append(f"{len(los)} {soort}s failed at the client while no worker was killed: "
                               f"{[(x.fout, rel(x.start)) for x in los[:5]]}")
    raar = [x for x in leest if x.status is not None and x.status < 500
            and not (x.status == 200 or (x.status == 404 and x.soort == "detail"))]
    if raar:
        bevindingen.append(f"{len(raar)} reads answered {Counter(x.status for x in raar)}")
    raar = [w for w in schrijfs if w.status is not None and w.status < 500 and w.status != OK_STATUS[w.actie]]
    if raar:
        bevindingen.append(f"{len(raar)} writes answered {Counter((w.actie, w.status) for w in raar)}")
    duur = [x.eind - x.start for x in leest if x.status is not None]
    if p(duur, 0.99) >= READ_P99:
        bevindingen.append(f"read p99 {p(duur, 0.99):.2f} s (limit {READ_P99} s)")
    storing = (dict((s, t) for t, s in gebeurd)["nrc_503"], dict((s, t) for t, s in gebeurd)["nrc_gezond"])
    tijdens = [w for w in alle_vastgelegd if storing[0] <= w.start - t0 <= storing[1]]
    if not tijdens:
        bevindingen.append("no write committed during the Notificaties API outage")

    # 3. audit: one row per committed create/update (actie and websiteUrl), none left of a deleted klant
    audit: dict[str, list] = defaultdict(list)
    for r in audit_rijen:
        audit[uuid_van(r.hoofd_object)].append(r)
    audit_fout = []
    for u in set(vastgelegd) | set(audit):
        ws = vastgelegd.get(u, [])
        rijen = audit.get(u, [])
        if ws and ws[-1].actie == "destroy":
            if rijen or u in klanten:
                audit_fout.append(f"{u}: deleted, yet {len(rijen)} audit rows / klant row {u in klanten}")
            continue
        verwacht = [(w.actie, w.marker) for w in ws]
        gezien = [(r.actie, (r.wijzigingen.get("nieuw") or {}).get("websiteUrl")) for r in rijen]
        if verwacht != gezien:
            audit_fout.append(f"{u}: committed {verwacht}, audit rows {gezien}")
    if audit_fout:
        bevindingen.append(f"{len(audit_fout)} klanten whose audit rows do not match their committed writes: "
                           f"{audit_fout[:3]}")

    # 4. outbox: one message per committed write, in order; nothing left pending or failed
    berichten: dict[str, list] = defaultdict(list)
    for r in outbox:
        berichten[str(r.klant_uuid)].append(r)
    outbox_fout = []
    for u in set(vastgelegd) | set(berichten):
        verwacht = [w.actie for w in vastgelegd.get(u, [])]
        gezien = [json.loads(r.bericht)["actie"] for r in berichten.get(u, [])]
        if verwacht != gezien:
            outbox_fout.append(f"{u}: committed {verwacht}, outbox {gezien}")
    if outbox_fout:
        bevindingen.append(f"{len(outbox_fout)} klanten whose outbox messages do not match their committed writes: "
                           f"{outbox_fout[:3]}")
    status = Counter(r.status for r in outbox)
    if drain_duur is None:
        bevindingen.append(f"the outbox did not drain within {DRAIN_TIMEOUT:.0f} s after the writers stopped")
    for s in ("pending", "failed"):
        if status.get(s):
            rijen = [r for r in outbox if r.status == s]
            bevindingen.append(f"{status[s]} outbox messages left {s} (attempts {Counter(r.pogingen for r in rijen)}, "
                               f"last errors {Counter(r.laatste_fout for r in rijen)})")

    # 5. the NRC: every outbox message accepted exactly once, in order per klant; nothing else
    geaccepteerd = nrc.geaccepteerd()
    aantal = Counter(o.tekst for o in geaccepteerd)
    toegestaan: dict[str, Kill] = {}
    for k in kills:
        if k.wat != "relay":
            continue
        onderweg = [o for o in nrc.ontvangen if o.poort in k.poorten and o.aankomst < k.moment]
        if onderweg and onderweg[-1].status == 201:
            toegestaan[onderweg[-1].tekst] = k           # the one POST in flight when this relay died
    dubbel_ok, na_kill, zonder_kill = [], [], []
    for tekst, n in aantal.items():
        if n < 2:
            continue
        keren = [o for o in geaccepteerd if o.tekst == tekst]
        info = (f"{json.loads(tekst)['actie']} {uuid_van(json.loads(tekst)['resourceUrl'])} x{n} at "
                f"{[rel(o.aankomst) for o in keren]} ports {[o.poort for o in keren]}")
        if n == 2 and tekst in toegestaan:
            dubbel_ok.append(info)
            continue
        # first sent by a relay that was killed later (and so never marked it), or by relays that all lived on
        gedood = next((k for k in kills if k.wat == "relay" and keren[0].poort in k.poorten
                       and keren[0].aankomst < k.moment), None)
        (na_kill if gedood else zonder_kill).append((gedood, info))
    if na_kill:
        wie = Counter(f"the relay of {k.instantie} killed at {rel(k.moment)}" for k, _ in na_kill)
        bevindingen.append(f"{len(na_kill)} notifications delivered again after a relay kill although they were "
                           f"not in flight at the kill (first sent by {dict(wie)}, which had not marked them; "
                           f"re-sent when their lease ended): {[i for _, i in na_kill][:4]}")
    if zonder_kill:
        bevindingen.append(f"{len(zonder_kill)} notifications delivered more than once by relays that were not "
                           f"killed (two relays sent the same message): {[i for _, i in zonder_kill][:4]}")
    in_outbox = {r.bericht for r in outbox}
    vreemd = [t for t in aantal if t not in in_outbox]
    if vreemd:
        bevindingen.append(f"{len(vreemd)} notifications accepted that are no committed write's message: {vreemd[:2]}")
    bezorgd: dict[str, list[str]] = defaultdict(list)       # uuid -> distinct texts, in order of first acceptance
    for o in geaccepteerd:
        u = uuid_van(json.loads(o.tekst)["resourceUrl"])
        if o.tekst not in bezorgd[u]:
            bezorgd[u].append(o.tekst)
    ontbrekend, volgorde = [], []
    for u, rijen in berichten.items():
        teksten = [r.bericht for r in rijen]
        missen = [f"{json.loads(r.bericht)['actie']} ({r.status})" for r in rijen if r.bericht not in aantal]
        if missen:
            ontbrekend.append((u, missen))
        elif bezorgd.get(u, []) != teksten:
            volgorde.append(u)
    if ontbrekend:
        bevindingen.append(f"{sum(len(m) for _, m in ontbrekend)} committed writes of {len(ontbrekend)} klanten "
                           f"never delivered: {ontbrekend[:3]}")
    if volgorde:
        bevindingen.append(f"{len(volgorde)} klanten whose notifications arrived out of order: {volgorde[:3]}")

    # summary
    nrc_status = Counter(o.status for o in nrc.ontvangen)
    rapport = "\n".join([
        "fault run summary (times after the writers started):",
        "  events: " + ", ".join(f"{t:.1f}s {s}" for t, s in gebeurd),
        "  kills: " + ", ".join(f"{k.wat} {k.instantie} pid {k.pid} at {rel(k.moment)}"
                                + (f" (ports to NRC {sorted(k.poorten)})" if k.wat == "relay" else "") for k in kills),
        f"  writes: {len(schrijfs)} sent, {len(alle_vastgelegd)} committed "
        f"{dict(Counter(w.actie for w in alle_vastgelegd))}, {len(tijdens)} of them during the outage; "
        f"{sum(w.beslist_door == 'database' for w in schrijfs)} decided by the database "
        f"({sum(bool(w.vastgelegd) for w in schrijfs if w.beslist_door == 'database')} committed); client errors "
        f"{dict(Counter(w.fout for w in schrijfs if w.fout))}; statuses {dict(Counter(w.status for w in schrijfs))}; "
        f"p50/p99 {p([w.eind - w.start for w in schrijfs], .5):.3f}/{p([w.eind - w.start for w in schrijfs], .99):.3f} s",
        f"  reads: {len(leest)}, statuses {dict(Counter(x.status for x in leest))}, client errors "
        f"{dict(Counter(x.fout for x in leest if x.fout))}, p50/p99 {p(duur, .5):.3f}/{p(duur, .99):.3f} s"
        + (f", max {max(duur):.3f} s" if duur else ""),
        f"  klanten: {len(vastgelegd)} written, {len(klanten)} left; audit rows {len(audit_rijen)}",
        f"  outbox: {len(outbox)} messages {dict(status)}; drained "
        + (f"{drain_duur:.1f} s after the writers stopped" if drain_duur is not None else "NOT within the limit"),
        f"  NRC: {len(nrc.ontvangen)} POSTs {dict(Counter(str(s) for s in nrc_status.elements()))}; "
        f"{len(geaccepteerd)} accepted, {len(aantal)} distinct; duplicates allowed (in flight at a relay kill) "
        f"{len(dubbel_ok)}, other duplicates {len(na_kill) + len(zonder_kill)}; never delivered "
        f"{sum(len(m) for _, m in ontbrekend)}",
        f"  processes: " + "; ".join(f"{n}: workers {srv.worker_pids()} relay {srv.relay_pids()}"
                                     for n, srv in instanties.items()),
    ])
    if dubbel_ok:
        rapport += f"\n  allowed duplicates: {dubbel_ok}"
    return bevindingen, rapport


if __name__ == "__main__":      # run it alone, without make: KLANTEN_TEST_DATABASE_URL=... python tests/test_fault_run.py
    import sys
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
