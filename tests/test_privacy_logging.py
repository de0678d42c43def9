"""Privacy by construction: no personal data in any log line, at any level, on any path.

Canary values (a BSN that passes the 11-proef, distinctive names, an e-mail address, a phone number, address
parts, a birth date, an RSIN of a person, an A-nummer, an employee's name in the JWT, ...) go through the API
on every path we can reach: success (create, read, list with every filter, PUT, PATCH, HEAD, 304, audit
trail, delete), validation errors that echo the values, kla-002 failures with the BSN in the subject URL,
authentication failures, 413/415/malformed JSON, a forced 500 (a database trigger and a corrupt row), a
database that was never migrated, and a database outage (an SQLite file that disappears; on PostgreSQL a
database that stops accepting connections). Every log record of every logger is captured at DEBUG (the
test servers run in-process, so their records reach the root logger) and rendered both with the
production JsonFormatter and raw (message, args, msg, exception text with traceback, stack): no canary,
nor a lower-cased or URL-encoded variant, may appear. `klanten-api serve` runs as a subprocess with the
production logging (configure_logging: JSON on stderr, uvicorn's access log off) and its stdout and
stderr are scanned too.

The structured request log is checked on the way: exactly one JSON `request` event per request, with
event, method, path (no query string), query_keys (names only), status, duration_ms, operation_id,
client_id and request_id; X-Request-ID is echoed in the response and in the event, or generated.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

import pytest
import requests
from werkzeug import Response

from conftest import ALLE, BRONORGANISATIE, Api, assert_no_leak, eigen_postgres_database, geldig_rsin, token
from klanten_api.apis import Layout
from klanten_api.http import spec_query_names
from klanten_api.logging import JsonFormatter
from klanten_api.settings import Settings
from storage.migrate import upgrade

# ---------------------------------------------------------------- canaries
BSN = geldig_rsin(7717171)                      # 771717106: passes the 11-proef
BSN_ONGELDIG = BSN[:-1] + str((int(BSN[-1]) + 3) % 10)   # fails the 11-proef (a typo'd BSN is still a BSN)
RSIN_PERSOON = geldig_rsin(3141593)             # innNnpId of a niet-natuurlijk persoon (eenmanszaak)
A_NUMMER = "7417417417"
ANP = "ANPKANARIE7717"
ANN = "ANNKANARIE7717"
ACHTERNAAM = "Kanarievogelzang"
VOORNAAM = "Tjiepmina"
VOORNAMEN = "Tjiepmina-Fluitenkruid"
VOORVOEGSEL = "vdKanarie"                       # max 10 characters
BEDRIJFSNAAM = "Kanariehandel-Tjiep"           # often a person's name (eenmanszaak)
EMAIL = "kanarie.x7q@voorbeeld.example"
TELEFOON = "0612398745"
POSTCODE = "7777XQ"
STRAAT = "Kanariestraatweg"
WOONPLAATS = "Vogelkooidorp"
GEBOORTEDATUM = "19770707"
LOCATIE = "Achter-de-kooi-x7q"
BUITENLAND = "Rua-do-Canario-77"
MEDEWERKER = "Fluitekruidje-Medewerkster"      # user_representation in the JWT: an employee's name
MEDEWERKER_ID = "fluitekruidje.x7q"            # user_id in the JWT
TOELICHTING = "Belde-over-verhuizing-Zangkooi"  # X-Audit-Toelichting

CANARIES = [BSN, BSN_ONGELDIG, RSIN_PERSOON, A_NUMMER, ANP, ANN, ACHTERNAAM, VOORNAAM, VOORNAMEN, VOORVOEGSEL,
            BEDRIJFSNAAM, EMAIL, "kanarie.x7q", TELEFOON, POSTCODE, STRAAT, WOONPLAATS, GEBOORTEDATUM, LOCATIE,
            BUITENLAND, MEDEWERKER, MEDEWERKER_ID, TOELICHTING, "Zangkooi", "Fluitenkruid", "Fluitekruidje"]
SUBJECT_PAD = f"/brp/ingeschrevenpersonen/{BSN}"


def varianten(waarde: str) -> set[str]:
    """The canary as written, lower-cased (we scan lower-cased text) and URL-encoded."""
    out = {waarde.lower(), quote(waarde, safe="").lower(), quote_plus(waarde).lower(),
           json.dumps(waarde)[1:-1].lower()}
    return {v for v in out if v}


NAALDEN = sorted({v for c in CANARIES for v in varianten(c)})


def persoon(subject: str | None = None, **overrides) -> dict:
    """A natuurlijk persoon with a canary in every personal field."""
    body = {
        "bronorganisatie": BRONORGANISATIE, "websiteUrl": "http://some.website.com",
        "voornaam": VOORNAAM, "voorvoegselAchternaam": VOORVOEGSEL, "achternaam": ACHTERNAAM,
        "bedrijfsnaam": BEDRIJFSNAAM, "functie": "Vogelaar", "telefoonnummer": TELEFOON, "emailadres": EMAIL,
        "adres": {"straatnaam": STRAAT, "huisnummer": 77, "huisletter": "Q", "huisnummertoevoeging": "x7",
                  "postcode": POSTCODE, "woonplaatsnaam": WOONPLAATS, "landcode": "6030"},
        "subjectType": "natuurlijk_persoon",
        "subjectIdentificatie": {
            "inpBsn": BSN, "anpIdentificatie": ANP, "inpANummer": A_NUMMER, "geslachtsnaam": ACHTERNAAM,
            "voorvoegselGeslachtsnaam": VOORVOEGSEL, "voorletters": "T.F.", "voornamen": VOORNAMEN,
            "geslachtsaanduiding": "v", "geboortedatum": GEBOORTEDATUM,
            "verblijfsadres": {"aoaIdentificatie": "0363200000777717", "wplWoonplaatsNaam": WOONPLAATS,
                               "gorOpenbareRuimteNaam": STRAAT, "aoaPostcode": POSTCODE, "aoaHuisnummer": 77,
                               "aoaHuisletter": "Q", "aoaHuisnummertoevoeging": "x7",
                               "inpLocatiebeschrijving": LOCATIE},
            "subVerblijfBuitenland": {"lndLandcode": "5010", "lndLandnaam": "Belgie",
                                      "subAdresBuitenland1": BUITENLAND, "subAdresBuitenland2": STRAAT,
                                      "subAdresBuitenland3": WOONPLAATS},
        },
    }
    if subject is not None:
        body["subject"] = subject
    body.update(overrides)
    return body


# every filter of klant_list, each with a canary where the value can be personal
FILTERS = {
    "bronorganisatie": BRONORGANISATIE, "klantnummer": "7717", "bedrijfsnaam": BEDRIJFSNAAM, "functie": "Vogelaar",
    "achternaam": ACHTERNAAM, "telefoonnummer": TELEFOON, "emailadres": EMAIL, "adres__straatnaam": STRAAT,
    "adres__postcode": POSTCODE, "adres__woonplaatsNaam": WOONPLAATS, "adres__landcode": "6030",
    "subject": None,  # the subject URL (with the BSN in its path), filled in by the test
    "subjectType": "natuurlijk_persoon", "subjectNatuurlijkPersoon__inpBsn": BSN,
    "subjectNatuurlijkPersoon__anpIdentificatie": ANP, "subjectNatuurlijkPersoon__inpA_nummer": A_NUMMER,
    "subjectNietNatuurlijkPersoon__innNnpId": RSIN_PERSOON, "subjectNietNatuurlijkPersoon__annIdentificatie": ANN,
    "subjectVestiging__vestigingsNummer": "000077177717",
}
REQUEST_KEYS = {"event", "method", "path", "query_keys", "query_other", "status", "duration_ms", "operation_id",
                "client_id", "request_id"}
# the only query parameter names the request log may show: those of the served APIs' documents
QUERY_NAMES = frozenset().union(*(spec_query_names(m.spec) for m in Layout.from_settings(Settings()).apis))


def gelogde_query(query: str) -> tuple[list[str], int]:
    """(query_keys, query_other) of the request event for a query string: the spec's names, the rest counted."""
    namen = [unquote_plus(p.partition("=")[0]) for p in query.split("&") if p]
    return sorted({n for n in namen if n in QUERY_NAMES}), sum(1 for n in namen if n not in QUERY_NAMES)


# ---------------------------------------------------------------- capturing every log record
class Vanger(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, naam: str) -> list[dict]:
        return [json.loads(JsonFormatter().format(r)) for r in list(self.records)
                if getattr(r, "event", None) == naam]


@contextmanager
def vang_logs():
    """A DEBUG handler on the root logger and the root at DEBUG, for the duration (all propagating loggers end
    here), plus the same handler on every logger that does not propagate.

    Except `uvicorn.access`: uvicorn writes its access log only when that logger has a handler (it asks
    hasHandlers() per connection), and the test servers (like production: `klanten-api serve` passes
    access_log=False and configure_logging disables the logger) run without one; attaching ours would switch
    the access log on in the test alone. (pytest's own log capture attaches its handler to non-propagating
    loggers and so switches it on for the in-process servers anyway; those records reach pytest's report, not
    any production handler.) test_klanten_api_serve_* shows that the production server prints no access log.
    """
    vanger = Vanger()
    root = logging.getLogger()
    oud = root.level
    eigen = [lg for lg in list(root.manager.loggerDict.values())
             if isinstance(lg, logging.Logger) and not lg.propagate and lg.name != "uvicorn.access"]
    for lg in (root, *eigen):
        lg.addHandler(vanger)
    root.setLevel(logging.DEBUG)
    try:
        yield vanger
    finally:
        for lg in (root, *eigen):
            lg.removeHandler(vanger)
        root.setLevel(oud)


_RUW = logging.Formatter()


def teksten(record: logging.LogRecord) -> list[str]:
    """Everything of a record that any handler or formatter could print."""
    out = []
    try:
        out.append(JsonFormatter().format(record))
    except Exception as exc:  # a record the production formatter cannot render is a finding of its own
        out.append(f"JsonFormatter failed: {type(exc).__name__}")
    try:
        out.append(record.getMessage())
    except Exception:
        pass
    out += [str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[0] is not None:
        out.append(_RUW.formatException(record.exc_info))
    out += [record.exc_text or "", record.stack_info or ""]
    extra = {k: v for k, v in vars(record).items()
             if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__ and k not in ("message", "asctime")}
    out.append(repr(extra))
    return out


def lekken_in(tekst: str) -> list[str]:
    laag = tekst.lower()
    return [n for n in NAALDEN if n in laag]


def assert_geen_lekken(vanger: Vanger, waar: str) -> None:
    gevonden = []
    for record in list(vanger.records):
        for tekst in teksten(record):
            for naald in lekken_in(tekst):
                i = tekst.lower().index(naald)
                gevonden.append(f"{record.name} {record.levelname} (thread {record.threadName}): {naald!r} in "
                                f"...{tekst[max(0, i - 150):i + 80]!r}...")
                break
    assert not gevonden, f"personal data in log records ({waar}):\n" + "\n".join(sorted(set(gevonden))[:30])


# ---------------------------------------------------------------- requests with a known X-Request-ID
class Verkeer:
    """Requests through conftest.Api, each with its own X-Request-ID, remembered for the request-event check."""

    def __init__(self, api: Api):
        self.api = api
        self.verwacht: list[dict] = []

    def __call__(self, method: str, path: str, *, op: str | None, client: str | None = ALLE,
                 status: int | tuple | None = None, headers: dict | None = None, **kw):
        rid = f"privacy-{uuid.uuid4().hex[:12]}"
        headers = {**(headers or {}), "X-Request-ID": rid}
        resp = self.api.request(method, path, headers=headers, **kw)
        if status is not None:
            toegestaan = status if isinstance(status, tuple) else (status,)
            assert resp.status_code in toegestaan, (method, path, resp.status_code, resp.text[:500])
        assert resp.headers.get("X-Request-ID") == rid, "X-Request-ID not echoed"
        parts = urlsplit(resp.request.url)
        query_keys, query_other = gelogde_query(parts.query)
        self.verwacht.append({"request_id": rid, "method": method, "path": parts.path,
                              "query_keys": query_keys, "query_other": query_other,
                              "status": resp.status_code, "operation_id": op, "client_id": client})
        return resp

    def controleer_events(self, vanger: Vanger) -> None:
        """Exactly one `request` event per request, with every key, the path without its query string."""
        per_id: dict[str, list[dict]] = {}
        for event in vanger.events("request"):
            per_id.setdefault(event.get("request_id"), []).append(event)
        fouten = []
        for v in self.verwacht:
            wat = f"{v['method']} {v['path']} {v['query_keys']} -> {v['status']}"
            events = per_id.get(v["request_id"], [])
            if len(events) != 1:
                fouten.append(f"{len(events)} request events for {wat}")
                continue
            event = events[0]
            if not REQUEST_KEYS <= set(event):
                fouten.append(f"missing keys {REQUEST_KEYS - set(event)} for {wat}")
            if (event["level"], event["logger"]) != ("INFO", "klanten_api.request"):
                fouten.append(f"level/logger {event['level']}/{event['logger']} for {wat}")
            if "?" in str(event.get("path")):
                fouten.append(f"query string in the logged path for {wat}")
            for k in ("method", "path", "query_keys", "query_other", "status", "operation_id", "client_id"):
                if event.get(k) != v[k]:
                    fouten.append(f"{k}: logged {event.get(k)!r}, expected {v[k]!r} for {wat}")
            if not (isinstance(event.get("duration_ms"), (int, float)) and event["duration_ms"] >= 0):
                fouten.append(f"duration_ms {event.get('duration_ms')!r} for {wat}")
        assert not fouten, "request events:\n" + "\n".join(fouten)


# ---------------------------------------------------------------- helpers for extra servers and databases
def vrije_poort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FORCEER = "forceer-500"


def sqlite_met_fouten(pad: Path) -> str:
    """A migrated SQLite database in which a write with functie 'forceer-500' fails inside the database (a
    trigger: an IntegrityError that is no unique violation, so an unhandled exception whose message holds the
    SQL parameters: the canaries) and one stored row cannot be read back (subjectIdentificatie is not JSON)."""
    url = f"sqlite:///{pad}"
    upgrade(url)
    con = sqlite3.connect(pad)
    for moment in ("INSERT", "UPDATE"):
        con.execute(f"CREATE TRIGGER forceer_500_{moment.lower()} BEFORE {moment} ON klant "
                    f"WHEN NEW.functie = '{FORCEER}' BEGIN SELECT RAISE(ABORT, 'geforceerde fout'); END")
    kolommen = {r[1] for r in con.execute("PRAGMA table_info(klant)")}
    rij = {"uuid": uuid.uuid4().hex, "bronorganisatie": BRONORGANISATIE, "klantnummer": "CORRUPT1",
           "bedrijfsnaam": BEDRIJFSNAAM, "functie": "Vogelaar", "website_url": "http://some.website.com",
           "voornaam": VOORNAAM, "voorvoegsel_achternaam": VOORVOEGSEL, "achternaam": ACHTERNAAM,
           "telefoonnummer": TELEFOON, "emailadres": EMAIL, "subject": "", "subject_type": "natuurlijk_persoon",
           "adres_aanwezig": 1, "adres_straatnaam": STRAAT, "adres_postcode": POSTCODE,
           "adres_woonplaatsnaam": WOONPLAATS, "adres_landcode": "6030",
           "subject_identificatie": '{"inpBsn": "%s", "geslachtsnaam": "%s", "geboortedatum": "%s" KAPOT'
                                    % (BSN, ACHTERNAAM, GEBOORTEDATUM),
           "zoek_inp_bsn": BSN, "aangemaakt": "2020-01-01 00:00:00.000000"}
    rij = {k: v for k, v in rij.items() if k in kolommen}
    con.execute(f"INSERT INTO klant ({', '.join(rij)}) VALUES ({', '.join('?' * len(rij))})", list(rij.values()))
    con.commit()
    con.close()
    return url, uuid.UUID(rij["uuid"])


def assert_fout_antwoord(resp, statussen=(500, 503)) -> None:
    assert resp.status_code in statussen, (resp.status_code, resp.text[:300])
    assert resp.headers.get("Content-Type") == "application/problem+json", resp.headers
    assert_no_leak(resp)
    assert not lekken_in(resp.text), f"a {resp.status_code} answer echoes personal data: {resp.text[:300]}"


# the filters that match the corrupt row of sqlite_met_fouten (and the canary klant made next to it)
CORRUPT_FILTERS = {"bronorganisatie": BRONORGANISATIE, "bedrijfsnaam": BEDRIJFSNAAM, "functie": "Vogelaar",
                   "achternaam": ACHTERNAAM, "telefoonnummer": TELEFOON, "emailadres": EMAIL,
                   "adres__straatnaam": STRAAT, "adres__postcode": POSTCODE, "adres__woonplaatsNaam": WOONPLAATS,
                   "adres__landcode": "6030", "subjectType": "natuurlijk_persoon",
                   "subjectNatuurlijkPersoon__inpBsn": BSN}


def canary_filters(subject: str) -> dict:
    return {k: (subject if k == "subject" else v) for k, v in FILTERS.items()
            if not k.startswith(("subjectNietNatuurlijkPersoon", "subjectVestiging"))}


# ================================================================= the scanner itself
def test_de_vanger_vindt_elke_vorm_van_een_kanarie():
    """The scan is only worth something if it finds a canary wherever a handler could print one."""
    log = logging.getLogger("klanten_api.privacytest")
    gevallen = [
        lambda: log.debug("klant %s", ACHTERNAAM.upper()),                               # args, other case
        lambda: log.info("filter", extra={"query": f"emailadres={quote(EMAIL, safe='')}"}),  # extra, URL-encoded
        lambda: log.info("dict", extra={"adres": {"postcode": POSTCODE.lower()}}),           # nested extra
    ]

    def met_traceback():
        try:
            raise ValueError(f"kapot voor {BSN}")
        except ValueError:
            log.warning("zonder details", exc_info=True)                                 # only in the traceback
    gevallen.append(met_traceback)
    for geval in gevallen:
        with vang_logs() as vanger:
            geval()
        with pytest.raises(AssertionError, match="personal data"):
            assert_geen_lekken(vanger, "self-test")
    with vang_logs() as vanger:
        log.debug("niets persoonlijks: %s", "klant-uuid")
    assert_geen_lekken(vanger, "self-test")


# ================================================================= success, validation, kla-002, auth
def test_geen_persoonsgegevens_in_logs_bij_succes_en_validatiefouten(api, httpserver, server):
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    httpserver.expect_request(f"/brp/weg/{BSN}").respond_with_data("nee", status=404)
    httpserver.expect_request(f"/brp/fout/{BSN}").respond_with_data(f"kapot {ACHTERNAAM}", status=500)
    httpserver.expect_request(f"/brp/redirect/{BSN}").respond_with_response(
        Response(status=302, headers={"Location": f"/brp/weg/{BSN}?email={quote(EMAIL)}"}))
    subject = httpserver.url_for(SUBJECT_PAD)
    dicht = vrije_poort()                                    # nothing listens here: connection refused
    stil = socket.socket()                                   # accepts, never answers: the subject check times out
    stil.bind(("127.0.0.1", 0))
    stil.listen(8)
    medewerker = {"Authorization": f"Bearer {token(ALLE, user_id=MEDEWERKER_ID, user_representation=MEDEWERKER)}",
                  "X-Audit-Toelichting": TOELICHTING, "X-NLX-Logrecord-ID": f"log-{BSN}",
                  "User-Agent": f"{ACHTERNAAM}-browser", "Referer": f"http://portaal.example/{BSN}?email={EMAIL}"}
    v = Verkeer(api)
    try:
        with vang_logs() as vanger:
            # ---- success: create, read, HEAD, 304, list with every filter, PUT, PATCH, audit trail
            r = v("POST", "/klanten", op="klant_create", status=201, headers=medewerker,
                  json=persoon(subject, klantnummer="7717"))
            klant = r.json()
            pad = urlsplit(klant["url"]).path[len("/api/v1"):]
            nnp = v("POST", "/klanten", op="klant_create", status=201, headers=medewerker, json={
                "bronorganisatie": BRONORGANISATIE, "websiteUrl": "http://some.website.com",
                "bedrijfsnaam": BEDRIJFSNAAM, "achternaam": ACHTERNAAM, "emailadres": EMAIL,
                "subjectType": "niet_natuurlijk_persoon",
                "subjectIdentificatie": {"innNnpId": RSIN_PERSOON, "annIdentificatie": ANN,
                                         "statutaireNaam": f"{ACHTERNAAM} eenmanszaak"}}).json()
            r = v("GET", pad, op="klant_read", status=200)
            v("HEAD", pad, op="klant_read", status=200)
            v("GET", pad, op="klant_read", status=304, headers={"If-None-Match": r.headers["ETag"]})
            for naam, waarde in FILTERS.items():
                waarde = subject if naam == "subject" else waarde
                r = v("GET", "/klanten", op="klant_list", status=200, params={naam: waarde})
                verwacht = 0 if naam == "subjectVestiging__vestigingsNummer" else 1
                assert r.json()["count"] >= verwacht, (naam, r.json()["count"])
            r = v("GET", "/klanten", op="klant_list", status=200, params={**canary_filters(subject), "page": "1"})
            assert r.json()["count"] == 1
            v("GET", "/klanten", op="klant_list", status=200, params={"subject_natuurlijk_persoon__inp_bsn": BSN,
                                                                      "e-mail": EMAIL, "naam": ACHTERNAAM})
            v("GET", "/klanten", op="klant_list", status=404, params={"achternaam": ACHTERNAAM, "page": "7"})
            v("PUT", pad, op="klant_update", status=200, headers=medewerker,
              json=persoon(subject, klantnummer="7717", functie="Zanger"))
            v("PATCH", pad, op="klant_partial_update", status=200, headers=medewerker,
              json={"achternaam": ACHTERNAAM, "subjectIdentificatie": {"geboortedatum": GEBOORTEDATUM,
                                                                       "voornamen": VOORNAMEN}})
            trail = v("GET", f"{pad}/audittrail", op="audittrail_list", status=200).json()
            v("GET", f"{pad}/audittrail/{trail[0]['uuid']}", op="audittrail_read", status=200)

            # ---- validation errors whose reasons echo the values
            fouten = [
                persoon(subject, emailadres=f"kanarie.x7q@@{ACHTERNAAM}"),
                persoon(subject, achternaam=ACHTERNAAM * 13, voornaam=VOORNAAM * 23, voorvoegselAchternaam=ACHTERNAAM),
                persoon(subject, subjectType=ACHTERNAAM),
                persoon(subject, telefoonnummer=TELEFOON * 3,
                        adres={"postcode": POSTCODE * 2, "straatnaam": STRAAT * 9}),
                persoon(subject, subjectIdentificatie={"inpBsn": BSN_ONGELDIG, "geslachtsaanduiding": ACHTERNAAM,
                                                       "inpANummer": "0" + A_NUMMER[1:],
                                                       "geboortedatum": GEBOORTEDATUM * 3}),
                persoon(subject, subjectIdentificatie={"inpBsn": f"{BSN}{BSN}",
                                                       "verblijfsadres": {"aoaPostcode": POSTCODE}}),
                persoon(subject, bronorganisatie=BSN_ONGELDIG, websiteUrl=f"geen url {ACHTERNAAM}"),
                persoon(subject, klantnummer=BSN, achternaam=12345, emailadres=[EMAIL], adres=STRAAT),
                persoon(None, subjectIdentificatie=None),
                {"achternaam": ACHTERNAAM, "emailadres": EMAIL, "subjectIdentificatie": {"inpBsn": BSN}},
                [ACHTERNAAM, BSN, EMAIL],
                f"{ACHTERNAAM} {BSN}",
            ]
            for body in fouten:
                v("POST", "/klanten", op="klant_create", status=400, headers=medewerker, json=body)
            v("PUT", pad, op="klant_update", status=400,
              json=persoon(subject, emailadres=f"{EMAIL}@x", subjectType=ACHTERNAAM))
            v("PATCH", pad, op="klant_partial_update", status=400,
              json={"subjectIdentificatie": {"inpBsn": BSN_ONGELDIG, "voornamen": VOORNAMEN * 11}})
            v("POST", "/klanten", op="klant_create", status=400, headers=medewerker,
              json=persoon(subject, klantnummer="7717"))                      # unique: the same klantnummer
            v("GET", "/klanten", op="klant_list", status=400,
              params={"subjectType": ACHTERNAAM, "bronorganisatie": BSN_ONGELDIG, "subject": f"{EMAIL} {BSN}"})
            v("GET", "/klanten", op="klant_list", status=400, params={"bronorganisatie": f"{TELEFOON}x"})
            v("GET", "/klanten", op="klant_list", status=404, params={"achternaam": ACHTERNAAM, "page": BSN + "x"})
            v("GET", "/klanten", op="klant_list", status=200, params={"achternaam": f"{ACHTERNAAM}\x00{BSN}"})
            # malformed bodies, wrong media types, too large
            v("POST", "/klanten", op="klant_create", status=400, headers={"Content-Type": "application/json"},
              data=f'{{"achternaam": "{ACHTERNAAM}", "inpBsn": "{BSN}", '.encode())
            v("POST", "/klanten", op="klant_create", status=400, headers={"Content-Type": "application/json"},
              data=b'{"achternaam": "' + ACHTERNAAM.encode() + b'\xff\xfe", "bsn": "' + BSN.encode() + b'"}')
            v("POST", "/klanten", op="klant_create", status=415,
              headers={"Content-Type": f"text/{ACHTERNAAM.lower()}; bsn={BSN}"}, data=f"{ACHTERNAAM} {BSN}".encode())
            v("PATCH", pad, op="klant_partial_update", status=(400, 415),
              headers={"Content-Type": f"application/{ACHTERNAAM.lower()}+json"},
              data=json.dumps({"achternaam": EMAIL}))
            v("POST", "/klanten", op="klant_create", client=None, status=413,
              json=persoon(subject, functie=ACHTERNAAM * 70_000))
            v("GET", "/klanten", op="klant_list", client=None, status=406, params={"achternaam": ACHTERNAAM},
              headers={"Accept": f"text/{ACHTERNAAM.lower()}"})

            # ---- kla-002 failures with the BSN (and more) in the subject URL
            for url in (httpserver.url_for(f"/brp/weg/{BSN}"), httpserver.url_for(f"/brp/fout/{BSN}"),
                        httpserver.url_for(f"/brp/redirect/{BSN}"),
                        f"http://127.0.0.1:{dicht}/brp/ingeschrevenpersonen/{BSN}?email={quote(EMAIL)}",
                        f"http://{ACHTERNAAM.lower()}-{BSN}.invalid/brp/{BSN}",
                        f"http://10.77.71.7/brp/ingeschrevenpersonen/{BSN}",
                        f"ftp://127.0.0.1/brp/{BSN}/{ACHTERNAAM}"):
                v("POST", "/klanten", op="klant_create", status=400, json=persoon(url))
            v("PATCH", pad, op="klant_partial_update", status=400,
              json={"subject": f"http://127.0.0.1:{stil.getsockname()[1]}/brp/ingeschrevenpersonen/{BSN}"})
            v("PUT", pad, op="klant_update", status=400, json=persoon(httpserver.url_for(f"/brp/weg/{BSN}")))

            # ---- authentication and authorisation failures
            v("GET", "/klanten", op="klant_list", client=None, status=403, params={"achternaam": ACHTERNAAM},
              headers={"Authorization": f"Bearer {ACHTERNAAM}.{BSN}.{EMAIL}"})
            v("GET", "/klanten", op="klant_list", client=None, status=403,
              params={"subjectNatuurlijkPersoon__inpBsn": BSN},
              headers={"Authorization": f"Bearer {token(f'kanarie-{BSN}', user_representation=MEDEWERKER)}"})
            v("POST", "/klanten", op="klant_create", client=None, status=403, auth=False, json=persoon(subject))
            v("POST", "/klanten", op="klant_create", client="lezer", status=403,
              headers={"Authorization": f"Bearer {token('lezer', user_representation=MEDEWERKER)}"},
              json=persoon(subject))
            v("GET", "/klanten", op="klant_list", client=None, status=403, params={"emailadres": EMAIL},
              headers={"Authorization": f"Bearer {token(ALLE, secret='verkeerd-' + BSN, user_id=MEDEWERKER_ID)}"})

            # ---- unknown resources, methods
            v("GET", f"/klanten/{uuid.uuid4()}", op="klant_read", status=404)
            v("DELETE", "/klanten", op=None, client=None, status=405, params={"inpBsn": BSN})
            v("PUT", f"/klanten/{uuid.uuid4()}", op="klant_update", status=404, json=persoon(subject))
            v("DELETE", pad, op="klant_delete", status=204, headers=medewerker)
            v("DELETE", urlsplit(nnp["url"]).path[len("/api/v1"):], op="klant_delete", status=204)

            # ---- X-Request-ID: generated when absent or unusable
            zonder = api.get("/klanten", params={"achternaam": ACHTERNAAM})
            gegenereerd = zonder.headers.get("X-Request-ID", "")
            assert uuid.UUID(gegenereerd), gegenereerd
            slecht = api.get("/klanten", params={"achternaam": ACHTERNAAM},
                             headers={"X-Request-ID": "met spatie en \u00e9"})
            vervangen = slecht.headers.get("X-Request-ID", "")
            assert uuid.UUID(vervangen), vervangen
            time.sleep(0.2)                         # the request event is written after the last byte is sent

        v.controleer_events(vanger)
        ids = {e["request_id"]: e for e in vanger.events("request")}
        assert gegenereerd in ids and ids[gegenereerd]["query_keys"] == ["achternaam"]
        assert vervangen in ids
        assert_geen_lekken(vanger, "success, validation, kla-002 and authentication paths")
    finally:
        stil.close()


def test_geen_persoonsgegevens_in_het_pad_van_de_request_log(api):
    """The request event logs the path. The API's own paths hold UUIDs only, but a client that puts a BSN or an
    e-mail address in a path (a wrong URL, a BRP-style path) must not get it into the log either: such a path is
    logged as the spec's template it matched, or as "(other)"."""
    v = Verkeer(api)
    with vang_logs() as vanger:
        v("GET", f"/klanten/{BSN}", op="klant_read", status=404)
        v("PATCH", f"/klanten/{ACHTERNAAM}", op="klant_partial_update", status=(400, 404), json={"x": 1})
        v("GET", f"/klanten/{EMAIL}/audittrail", op="audittrail_list", status=404)
        v("GET", f"/klanten/{uuid.uuid4()}/audittrail/{BSN}", op="audittrail_read", status=404)
        v("GET", f"{api.base}/api/v1/ingeschrevenpersonen/{BSN}", op=None, client=None, status=404)
        v("GET", f"{api.base}/{ACHTERNAAM}/{BSN}", op=None, client=None, status=404)
        v("GET", f"{api.base}/ref/fouten/{ACHTERNAAM}/", op=None, client=None, status=(200, 404))
        time.sleep(0.2)
    per_id = {e["request_id"]: e for e in vanger.events("request")}
    gelogd = [per_id[x["request_id"]]["path"] for x in v.verwacht]
    assert gelogd == ["/api/v1/klanten/{uuid}", "/api/v1/klanten/{uuid}", "/api/v1/klanten/{klant_uuid}/audittrail",
                      "/api/v1/klanten/{klant_uuid}/audittrail/{uuid}", "(other)", "(other)", "(other)"], gelogd
    assert_geen_lekken(vanger, "paths with personal data")


def test_geen_persoonsgegevens_als_naam_in_de_query_van_de_request_log(api):
    """A query part without `=` (`?<bsn>&<e-mail>`), or any name the spec does not define, is chosen by the
    client and can be personal data: the request event names only the spec's parameters and counts the rest."""
    v = Verkeer(api)
    with vang_logs() as vanger:
        v("GET", f"/klanten?{BSN}&{quote_plus(EMAIL)}", op="klant_list", status=(200, 400))
        v("GET", f"/klanten?achternaam=x&{ACHTERNAAM}=1&{TELEFOON}", op="klant_list", status=(200, 400))
        v("GET", f"/klanten/{uuid.uuid4()}?{BSN}", op="klant_read", status=404)
        v("DELETE", f"/klanten/{uuid.uuid4()}?{EMAIL}=", op="klant_delete", status=404)
        v("GET", f"{api.base}/ref/kanalen/?{EMAIL}", op=None, client=None, status=200)
        time.sleep(0.2)
    v.controleer_events(vanger)
    per_id = {e["request_id"]: e for e in vanger.events("request")}
    gelogd = [(per_id[x["request_id"]]["query_keys"], per_id[x["request_id"]]["query_other"]) for x in v.verwacht]
    assert gelogd == [([], 2), (["achternaam"], 2), ([], 1), ([], 1), ([], 1)], gelogd
    assert_geen_lekken(vanger, "names in the query string")


def test_geen_persoonsgegevens_in_de_request_log_van_de_contactmomenten_api(api):
    """The same for the Contactmomenten paths: a BSN or an e-mail address in a path is logged as the template it
    matched (or "(other)"), in a query value never, as a query name only counted; the names logged are the
    Contactmomenten document's own. Bodies with personal data (tekst, a medewerker's name, a klant URL with a
    BSN that the cm-004 guard refuses) leave nothing in any log record either."""
    cm = Api(api.base)
    cm.root = f"{api.base}/contactmomenten/api/v1"
    v = Verkeer(cm)
    klant_url = f"http://127.0.0.1:1{SUBJECT_PAD}"
    with vang_logs() as vanger:
        aangemaakt = v("POST", "/contactmomenten", op="contactmoment_create", status=201, json={
            "bronorganisatie": BRONORGANISATIE, "kanaal": "telefoon", "tekst": f"{BSN} {EMAIL} {TELEFOON}",
            "medewerkerIdentificatie": {"identificatie": MEDEWERKER_ID, "achternaam": ACHTERNAAM,
                                        "voorletters": "T", "voorvoegselAchternaam": VOORVOEGSEL}}).json()
        cm_uuid = aangemaakt["url"].rsplit("/", 1)[1]
        v("POST", "/klantcontactmomenten", op="klantcontactmoment_create", status=400,
          json={"contactmoment": aangemaakt["url"], "klant": klant_url, "rol": "belanghebbende"})
        v("GET", f"/contactmomenten/{BSN}", op="contactmoment_read", status=404)
        v("PATCH", f"/contactmomenten/{ACHTERNAAM}", op="contactmoment_partial_update", status=(400, 404),
          json={"tekst": "x"})
        v("GET", f"/klantcontactmomenten/{EMAIL}", op="klantcontactmoment_read", status=404)
        v("DELETE", f"/objectcontactmomenten/{BSN}", op="objectcontactmoment_delete", status=404)
        v("GET", f"/contactmomenten/{cm_uuid}/audittrail/{BSN}", op="audittrail_read", status=404)
        v("GET", f"/{ACHTERNAAM}/{BSN}", op=None, client=None, status=404)
        v("GET", f"/contactmomenten?medewerker={quote_plus(EMAIL)}&tekst={BSN}", op="contactmoment_list",
          status=(200, 400))
        v("GET", f"/klantcontactmomenten?klant={quote_plus(klant_url)}&{BSN}", op="klantcontactmoment_list",
          status=(200, 400))
        v("GET", f"/objectcontactmomenten?object={quote_plus(klant_url)}&{quote_plus(EMAIL)}=1",
          op="objectcontactmoment_list", status=(200, 400))
        v("GET", f"/contactmomenten/{cm_uuid}?{ACHTERNAAM}", op="contactmoment_read", status=200)
        time.sleep(0.2)
    per_id = {e["request_id"]: e for e in vanger.events("request")}
    gelogd = [(per_id[x["request_id"]]["path"], per_id[x["request_id"]]["query_keys"],
               per_id[x["request_id"]]["query_other"]) for x in v.verwacht]
    cmb = "/contactmomenten/api/v1"
    verwacht = [
        (f"{cmb}/contactmomenten", [], 0), (f"{cmb}/klantcontactmomenten", [], 0),
        (f"{cmb}/contactmomenten/{{uuid}}", [], 0), (f"{cmb}/contactmomenten/{{uuid}}", [], 0),
        (f"{cmb}/klantcontactmomenten/{{uuid}}", [], 0), (f"{cmb}/objectcontactmomenten/{{uuid}}", [], 0),
        (f"{cmb}/contactmomenten/{{contactmoment_uuid}}/audittrail/{{uuid}}", [], 0), ("(other)", [], 0),
        (f"{cmb}/contactmomenten", ["medewerker"], 1), (f"{cmb}/klantcontactmomenten", ["klant"], 1),
        (f"{cmb}/objectcontactmomenten", ["object"], 1), (f"{cmb}/contactmomenten/{cm_uuid}", [], 1)]
    assert gelogd == verwacht, gelogd
    for x, (pad, _, _) in zip(v.verwacht, verwacht):
        x["path"] = pad           # (a path with personal data is logged as its template)
    v.controleer_events(vanger)   # one event per request, every key, operation and client as expected
    assert_geen_lekken(vanger, "Contactmomenten paths, queries and bodies")


def test_operations_endpoints_loggen_geen_fouten(server):
    """/_health/live, /_health/ready and /_metrics are polled every few seconds by an orchestrator: a healthy
    answer must not write an ERROR (or WARNING) record each time."""
    with vang_logs() as vanger:
        for pad in ("/_health/live", "/_health/ready", "/_metrics"):
            r = requests.get(f"{server.url}{pad}", timeout=10)
            assert r.status_code == 200, (pad, r.status_code)
        time.sleep(0.2)
    luid = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in vanger.records if r.levelno >= logging.WARNING]
    assert not luid, "healthy operations requests logged:\n" + "\n".join(luid)


# ================================================================= forced 500s
def test_geen_persoonsgegevens_in_logs_bij_een_geforceerde_500(server_factory, tmp_path, httpserver):
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    subject = httpserver.url_for(SUBJECT_PAD)
    url, corrupt = sqlite_met_fouten(tmp_path / "fouten.sqlite3")
    srv = server_factory(database_url=url)
    v = Verkeer(Api(srv.url))
    with vang_logs() as vanger:
        r = v("POST", "/klanten", op="klant_create", status=500, json=persoon(subject, functie=FORCEER))
        assert_fout_antwoord(r, (500,))
        r = v("POST", "/klanten", op="klant_create", status=201, json=persoon(subject))
        pad = urlsplit(r.json()["url"]).path[len("/api/v1"):]
        assert_fout_antwoord(v("PUT", pad, op="klant_update", status=500,
                               json=persoon(subject, functie=FORCEER)), (500,))
        assert_fout_antwoord(v("PATCH", pad, op="klant_partial_update", status=500,
                               json={"functie": FORCEER, "emailadres": EMAIL}), (500,))
        # the corrupt row: reading it back fails in the server
        assert_fout_antwoord(v("GET", f"/klanten/{corrupt}", op="klant_read", status=500), (500,))
        assert_fout_antwoord(v("GET", "/klanten", op="klant_list", status=500,
                               params={"subjectNatuurlijkPersoon__inpBsn": BSN, "achternaam": ACHTERNAAM}), (500,))
        assert_fout_antwoord(v("GET", "/klanten", op="klant_list", status=500,
                               params=CORRUPT_FILTERS), (500,))
        time.sleep(0.2)
    v.controleer_events(vanger)
    onverwacht = vanger.events("unhandled_exception")
    assert len(onverwacht) >= 5, f"{len(onverwacht)} unhandled_exception events for 5 forced 500s"
    for event in onverwacht:
        assert event["level"] == "ERROR" and event["exception_class"] and event["frames"], event
        assert all(isinstance(f, str) and f.count(":") >= 2 for f in event["frames"]), event
    assert_geen_lekken(vanger, "forced 500s")


def test_geen_persoonsgegevens_in_logs_bij_een_niet_gemigreerde_database(server_factory, tmp_path, httpserver):
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    subject = httpserver.url_for(SUBJECT_PAD)
    leeg = tmp_path / "nooit-gemigreerd.sqlite3"
    srv = server_factory(database_url=f"sqlite:///{leeg}")
    v = Verkeer(Api(srv.url))
    with vang_logs() as vanger:
        assert_fout_antwoord(v("POST", "/klanten", op="klant_create", status=(500, 503), json=persoon(subject)))
        assert_fout_antwoord(v("GET", "/klanten", op="klant_list", status=(500, 503), params=canary_filters(subject)))
        assert_fout_antwoord(v("GET", f"/klanten/{uuid.uuid4()}", op="klant_read", status=(500, 503)))
        assert_fout_antwoord(v("PATCH", f"/klanten/{uuid.uuid4()}", op="klant_partial_update", status=(500, 503),
                               json={"achternaam": ACHTERNAAM, "emailadres": EMAIL}))
        ready = requests.get(f"{srv.url}/_health/ready", timeout=10)
        assert ready.status_code == 503, ready.text
        time.sleep(0.2)
    v.controleer_events(vanger)
    assert vanger.events("database_unavailable") or vanger.events("unhandled_exception")
    assert_geen_lekken(vanger, "a database that was never migrated")


# ================================================================= the notification relay
def wacht_op_events(vanger: Vanger, namen: set[str], seconden: float = 15) -> None:
    deadline = time.time() + seconden
    while time.time() < deadline:
        if namen <= {getattr(r, "event", None) for r in list(vanger.records)}:
            return
        time.sleep(0.05)
    gezien = sorted({str(getattr(r, "event", None)) for r in list(vanger.records)})
    pytest.fail(f"events {sorted(namen)} not all logged within {seconden}s; seen {gezien}")


def test_geen_persoonsgegevens_in_logs_van_de_notificatie_relay(server_factory, tmp_path, httpserver):
    """The relay's events (retry, failed, delivered, relay_error when the database goes away) hold ids only,
    also when the Notificaties API answers with personal data in its error body."""
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    antwoorden = iter([(500, f"kapot {ACHTERNAAM} {BSN}"), (400, json.dumps({"detail": f"{EMAIL} {BSN}"}))])

    def nrc(request):
        status, tekst = next(antwoorden, (201, "{}"))
        return Response(tekst, status=status, content_type="application/json")

    httpserver.expect_request("/nrc/api/v1/notificaties", method="POST").respond_with_handler(nrc)
    subject = httpserver.url_for(SUBJECT_PAD)
    map_ = tmp_path / "relay"
    map_.mkdir()
    url = f"sqlite:///{map_ / 'klanten.sqlite3'}"
    upgrade(url)
    srv = server_factory(database_url=url, notifications_api_url=httpserver.url_for("/nrc/api/v1/"),
                        notifications_backoff=0.05, notifications_timeout=2)
    v = Verkeer(Api(srv.url))
    with vang_logs() as vanger:
        v("POST", "/klanten", op="klant_create", status=201, json=persoon(subject))
        wacht_op_events(vanger, {"notification_retry", "notification_failed"})
        v("POST", "/klanten", op="klant_create", status=201, json=persoon(subject, klantnummer="7718"))
        wacht_op_events(vanger, {"notification_delivered"})
        shutil.rmtree(map_)                       # the database goes away under the running relay
        srv.app.engine.dispose()
        srv.app.relay.wake.set()
        wacht_op_events(vanger, {"relay_error"})
    v.controleer_events(vanger)
    for naam, sleutels in (("notification_retry", {"notificatie_id", "reason", "attempts", "retry_in_seconds"}),
                           ("notification_failed", {"notificatie_id", "reason", "attempts"}),
                           ("notification_delivered", {"notificatie_id"}), ("relay_error", {"exception_class"})):
        for event in vanger.events(naam):
            assert sleutels <= set(event), (naam, event)
    assert_geen_lekken(vanger, "notification relay")


# ================================================================= database outage
def test_geen_persoonsgegevens_in_logs_als_de_sqlite_database_verdwijnt(server_factory, tmp_path, httpserver):
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    subject = httpserver.url_for(SUBJECT_PAD)
    map_ = tmp_path / "verdwijnt"
    map_.mkdir()
    url = f"sqlite:///{map_ / 'klanten.sqlite3'}"
    upgrade(url)
    srv = server_factory(database_url=url)
    v = Verkeer(Api(srv.url))
    with vang_logs() as vanger:
        r = v("POST", "/klanten", op="klant_create", status=201, json=persoon(subject))
        pad = urlsplit(r.json()["url"]).path[len("/api/v1"):]
        v("GET", "/klanten", op="klant_list", status=200, params=canary_filters(subject))
        # the database goes away: the file and its directory are removed, pooled connections are dropped
        # (root ignores chmod 000, so the directory is deleted instead)
        shutil.rmtree(map_)
        srv.app.engine.dispose()
        assert_fout_antwoord(v("POST", "/klanten", op="klant_create", status=(500, 503), json=persoon(subject)))
        assert_fout_antwoord(v("GET", "/klanten", op="klant_list", status=(500, 503), params=canary_filters(subject)))
        assert_fout_antwoord(v("GET", pad, op="klant_read", status=(500, 503)))
        assert_fout_antwoord(v("PUT", pad, op="klant_update", status=(500, 503), json=persoon(subject)))
        ready = requests.get(f"{srv.url}/_health/ready", timeout=10)
        assert ready.status_code == 503, ready.text
        time.sleep(0.2)
    v.controleer_events(vanger)
    assert_geen_lekken(vanger, "SQLite database gone")


postgres_only = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="PostgreSQL outage: set KLANTEN_TEST_DATABASE_URL=postgresql://...")


@postgres_only
def test_geen_persoonsgegevens_in_logs_als_postgresql_wegvalt(server_factory, httpserver):
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    subject = httpserver.url_for(SUBJECT_PAD)
    with eigen_postgres_database("klanten_privacy") as (url, admin):    # dropped afterwards, even when cut off
        naam = url.rsplit("/", 1)[1]
        upgrade(url)
        srv = server_factory(database_url=url, db_pool_timeout=2)
        v = Verkeer(Api(srv.url))
        with vang_logs() as vanger:
            r = v("POST", "/klanten", op="klant_create", status=201, json=persoon(subject))
            pad = urlsplit(r.json()["url"]).path[len("/api/v1"):]
            v("GET", "/klanten", op="klant_list", status=200, params=canary_filters(subject))
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{naam}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{naam}'")
            assert_fout_antwoord(v("POST", "/klanten", op="klant_create", status=(500, 503), json=persoon(subject)))
            assert_fout_antwoord(v("GET", "/klanten", op="klant_list", status=(500, 503),
                                   params=canary_filters(subject)))
            assert_fout_antwoord(v("GET", pad, op="klant_read", status=(500, 503)))
            assert_fout_antwoord(v("PATCH", pad, op="klant_partial_update", status=(500, 503),
                                   json={"achternaam": ACHTERNAAM, "emailadres": EMAIL}))
            assert requests.get(f"{srv.url}/_health/ready", timeout=10).status_code == 503
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{naam}" ALLOW_CONNECTIONS true')
            v("GET", "/klanten", op="klant_list", status=200, params=canary_filters(subject))
            time.sleep(0.2)
        v.controleer_events(vanger)
        assert_geen_lekken(vanger, "PostgreSQL outage")


# ================================================================= production logging: `klanten-api serve`
def _klanten_api_commando() -> list[str]:
    script = Path(sys.executable).with_name("klanten-api")
    return [str(script)] if script.exists() else [sys.executable, "-m", "klanten_api.cli"]


@dataclass
class ServeRun:
    stdout: str
    stderr: str
    verwacht: list[dict]
    gegenereerd_id: str


@pytest.fixture(scope="module")
def serve_run(tmp_path_factory, auth_config, make_httpserver) -> ServeRun:
    """`klanten-api serve` (a subprocess, production logging) driven with the canaries once for the tests below:
    success, validation errors, kla-002, authentication failures, forced 500s."""
    httpserver = make_httpserver
    httpserver.clear()
    httpserver.expect_request(SUBJECT_PAD).respond_with_data("ok", status=200)
    httpserver.expect_request(f"/brp/weg/{BSN}").respond_with_data("nee", status=404)
    subject = httpserver.url_for(SUBJECT_PAD)
    tmp = tmp_path_factory.mktemp("serve")
    url, corrupt = sqlite_met_fouten(tmp / "serve.sqlite3")
    poort = vrije_poort()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLANTEN_")}
    env.update({"KLANTEN_DATABASE_URL": url, "KLANTEN_AUTH_CONFIG": str(auth_config), "KLANTEN_DEVELOPMENT": "true",
                "KLANTEN_SUBJECT_ALLOWED_HOSTS": "127.0.0.1,localhost", "KLANTEN_SUBJECT_TIMEOUT": "2",
                "PYTHONUNBUFFERED": "1"})
    uit, fout = tmp / "stdout.txt", tmp / "stderr.txt"
    with open(uit, "wb") as stdout, open(fout, "wb") as stderr:
        proc = subprocess.Popen([*_klanten_api_commando(), "serve", "--host", "127.0.0.1", "--port", str(poort)],
                                env=env, stdout=stdout, stderr=stderr, cwd=tmp)
    base = f"http://127.0.0.1:{poort}"
    v = Verkeer(Api(base))
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"{base}/_health/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, f"klanten-api serve stopped: {fout.read_text()[-2000:]}"
            assert time.time() < deadline, "klanten-api serve did not become ready"
            time.sleep(0.1)
        medewerker = {"Authorization": f"Bearer {token(ALLE, user_id=MEDEWERKER_ID, user_representation=MEDEWERKER)}",
                      "X-Audit-Toelichting": TOELICHTING, "User-Agent": f"{ACHTERNAAM}-browser"}
        r = v("POST", "/klanten", op="klant_create", status=201, headers=medewerker, json=persoon(subject))
        pad = urlsplit(r.json()["url"]).path[len("/api/v1"):]
        v("GET", pad, op="klant_read", status=200)
        v("GET", "/klanten", op="klant_list", status=200, params=canary_filters(subject))
        v("PATCH", pad, op="klant_partial_update", status=200, headers=medewerker,
          json={"emailadres": EMAIL, "subjectIdentificatie": {"geboortedatum": GEBOORTEDATUM}})
        v("POST", "/klanten", op="klant_create", status=400, json=persoon(subject, subjectType=ACHTERNAAM,
                                                                      emailadres=f"{EMAIL}@@"))
        v("POST", "/klanten", op="klant_create", status=400, json=persoon(httpserver.url_for(f"/brp/weg/{BSN}")))
        v("GET", "/klanten", op="klant_list", status=400, params={"subjectType": ACHTERNAAM, "subject": EMAIL})
        v("GET", f"/klanten?{BSN}&{quote_plus(EMAIL)}&{ACHTERNAAM}=1", op="klant_list", status=(200, 400, 500))
        v("POST", "/klanten", op="klant_create", status=415, headers={"Content-Type": f"text/{ACHTERNAAM}"},
          data=BSN.encode())
        v("POST", "/klanten", op="klant_create", client=None, status=413, json=persoon(subject, functie=EMAIL * 40_000))
        v("GET", "/klanten", op="klant_list", client=None, status=403, params={"emailadres": EMAIL},
          headers={"Authorization": f"Bearer {ACHTERNAAM}"})
        v("POST", "/klanten", op="klant_create", status=500, json=persoon(subject, functie=FORCEER))
        v("GET", f"/klanten/{corrupt}", op="klant_read", status=500)
        v("GET", "/klanten", op="klant_list", status=500, params=CORRUPT_FILTERS)
        zonder = requests.get(f"{base}/api/v1/klanten", params={"achternaam": ACHTERNAAM},
                              headers={"Authorization": f"Bearer {token()}"}, timeout=10)
        gegenereerd = zonder.headers["X-Request-ID"]
        assert uuid.UUID(gegenereerd)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        httpserver.clear()
    return ServeRun(uit.read_text("utf-8", "replace"), fout.read_text("utf-8", "replace"), v.verwacht, gegenereerd)


def test_klanten_api_serve_schrijft_geen_persoonsgegevens(serve_run):
    """Nothing the production server prints (log events, access log, warnings) holds a canary."""
    for naam, tekst in (("stdout", serve_run.stdout), ("stderr", serve_run.stderr)):
        gevonden = lekken_in(tekst)
        assert not gevonden, f"personal data on {naam} of klanten-api serve: {gevonden}\n{tekst[-3000:]}"
    assert "HTTP/1.1" not in serve_run.stderr + serve_run.stdout, "an access-log line (request line) was printed"


def _json_regels(tekst: str) -> tuple[list[dict], list[str]]:
    events, anders = [], []
    for regel in tekst.splitlines():
        if not regel.strip():
            continue
        try:
            events.append(json.loads(regel))
        except ValueError:
            anders.append(regel)
    return events, anders


def test_klanten_api_serve_logt_een_request_event_per_verzoek(serve_run):
    events, _ = _json_regels(serve_run.stderr)
    per_id: dict[str, list[dict]] = {}
    for e in events:
        if e.get("event") == "request":
            per_id.setdefault(e.get("request_id"), []).append(e)
    for verwacht in serve_run.verwacht:
        gevonden = per_id.get(verwacht["request_id"], [])
        assert len(gevonden) == 1, (len(gevonden), verwacht)
        event = gevonden[0]
        assert REQUEST_KEYS <= set(event) and "?" not in event["path"], event
        for k in ("method", "path", "query_keys", "query_other", "status", "operation_id", "client_id"):
            assert event[k] == verwacht[k], (k, event, verwacht)
    assert serve_run.gegenereerd_id in per_id
    assert sum(1 for e in events if e.get("event") == "unhandled_exception") >= 3
    for e in events:
        if e.get("event") == "unhandled_exception":
            assert set(e) >= {"exception_class", "frames"} and e["level"] == "ERROR", e


def test_klanten_api_serve_schrijft_alleen_json_regels(serve_run):
    """Production logging is structured: every line on stderr is one JSON object (nothing on stdout)."""
    _, anders = _json_regels(serve_run.stderr)
    assert not anders, "lines of klanten-api serve that are not JSON:\n" + "\n".join(a[:300] for a in anders)
    assert not serve_run.stdout.strip(), serve_run.stdout[:500]
