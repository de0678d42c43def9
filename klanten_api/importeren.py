"""`klanten-api import`: move in from another Klanten API 1.0 server (or from an export file), keeping every uuid,
klantnummer and audit row (DECISIONS #28).

The source is read through its public API: the klant list page by page (`next` links), each klant's audit trail
(a bare list or a paginated one) fetched by a small thread pool, since the source is the limit. Each batch of a
few hundred klanten is written in one transaction, a klant always with its audit rows, so a run stopped at any
moment (Ctrl+C, kill -9, the source down) leaves no half klant, and running the same command again converges:
a klant already here with identical content is skipped, one with other content (or whose bronorganisatie and
klantnummer another klant holds) is reported and left alone unless --overwrite. No notifications are sent.
At the end a verification report compares what we now hold with what the source serves; the exit status is 1
on any difference, skipped item or conflict.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import sys
import time
import uuid as uuid_mod
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from .settings import ConfigError, Settings

log = logging.getLogger("klanten_api.importeren")

USER_AGENT = "klanten-api import"
TOKEN_LEVENSDUUR = 30.0        # seconds before a fresh JWT is made (servers may refuse old `iat`s)
TIJDELIJK = {429, 500, 502, 503, 504}    # statuses worth a retry: the source is busy or restarting
MAX_WACHT = 30.0               # seconds, the longest pause between two attempts


class BronFout(Exception):
    """The source could not be read (after the retries); what was committed stays, a new run resumes."""


# ---------------------------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------------------------
class HttpBron:
    """A Klanten API 1.0 server, read through its public API with a ZGW JWT."""

    def __init__(self, root: str, *, client_id: str = "", secret: str = "", timeout: float = 30.0,
                 pogingen: int = 8, backoff: float = 1.0, gebruiker: str = "klanten-api import"):
        import requests
        self.root = root.rstrip("/")
        self.client_id, self.secret = client_id, secret
        self.timeout, self.pogingen, self.backoff = timeout, pogingen, backoff
        self.gebruiker = gebruiker
        self.session = requests.Session()
        self.session.trust_env = False
        # one connection per pool thread, kept alive
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self._token, self._token_tijd = None, 0.0

    def _headers(self) -> dict:
        if not self.client_id:
            return {}
        if self._token is None or time.monotonic() - self._token_tijd > TOKEN_LEVENSDUUR:
            import jwt
            # iat a little in the past: Open Klant 1.x refuses a token from a clock that runs ahead (500)
            nu = int(time.time()) - 5
            self._token = jwt.encode({"iss": self.client_id, "iat": nu, "client_id": self.client_id,
                                      "user_id": "", "user_representation": self.gebruiker},
                                     self.secret, algorithm="HS256")
            self._token_tijd = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, url: str, *, niet_gevonden_mag: bool = False):
        """The JSON at url (None for a 404 when allowed); transient failures are retried with backoff."""
        import requests
        laatste = ""
        for poging in range(self.pogingen):
            if poging:
                time.sleep(min(MAX_WACHT, self.backoff * 2 ** (poging - 1)))
            try:
                resp = self.session.get(url, headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as exc:
                laatste = type(exc).__name__
                log.warning("source not reachable, retrying", extra={"event": "import_bron_fout", "fout": laatste})
                continue
            if resp.status_code == 404 and niet_gevonden_mag:
                return None
            if resp.status_code in TIJDELIJK:
                laatste = f"HTTP {resp.status_code}"
                log.warning("source busy, retrying", extra={"event": "import_bron_fout", "status": resp.status_code})
                continue
            if resp.status_code != 200:
                raise BronFout(f"GET {urlsplit(url).path} answered HTTP {resp.status_code}"
                               + (" (check the credentials and the scopes klanten.lezen or contactmomenten.lezen, "
                                  "and audittrails.lezen)"
                                  if resp.status_code in (401, 403) else ""))
            try:
                return resp.json()
            except ValueError:
                raise BronFout(f"GET {urlsplit(url).path} did not answer JSON") from None
        raise BronFout(f"the source did not answer after {self.pogingen} attempts ({laatste})")

    def _volgende(self, link, resource: str = "klanten") -> str | None:
        """A `next` link taken onto our root: its query only. The source builds links from its own idea of its
        host name, which after the switch may well be this server."""
        if not isinstance(link, str) or not link:
            return None
        query = urlsplit(link).query
        return f"{self.root}/{resource}" + (f"?{query}" if query else "")

    def paginas(self, resource: str = "klanten"):
        """(count as served, items of the page) for every page of a list (klanten, contactmomenten, ...)."""
        url, gezien = f"{self.root}/{resource}", set()
        while url and url not in gezien:
            gezien.add(url)
            pagina = self.get(url)
            if isinstance(pagina, list):           # a source that does not page
                yield len(pagina), pagina
                return
            if not isinstance(pagina, dict) or not isinstance(pagina.get("results"), list):
                raise BronFout(f"the {resource} list is not a paginated API list (no `results`)")
            yield pagina.get("count"), pagina["results"]
            url = self._volgende(pagina.get("next"), resource)

    def audittrail(self, klant_uuid: uuid_mod.UUID, resource: str = "klanten") -> list | None:
        """Every audit row of a klant (or contactmoment) ([] when it has none); None when it is gone."""
        url = f"{self.root}/{resource}/{klant_uuid}/audittrail"
        regels, gezien = [], set()
        while url and url not in gezien:
            gezien.add(url)
            pagina = self.get(url, niet_gevonden_mag=True)
            if pagina is None:
                # the reference answers 404 for a klant without rows; tell that from a klant deleted meanwhile
                if not regels and self.get(f"{self.root}/{resource}/{klant_uuid}", niet_gevonden_mag=True) is None:
                    return None
                break
            if isinstance(pagina, list):           # the reference and the spec: a bare list
                regels.extend(pagina)
                break
            if not isinstance(pagina, dict) or not isinstance(pagina.get("results"), list):
                raise BronFout("an audit trail is neither a list nor a page with `results`")
            regels.extend(pagina["results"])       # Open Klant 1.x: paginated
            nxt = pagina.get("next")
            url = (f"{self.root}/{resource}/{klant_uuid}/audittrail?{urlsplit(nxt).query}"
                   if isinstance(nxt, str) and nxt else None)
        return regels


BESTAND_SOORTEN = ("klant", "contactmoment", "klantcontactmoment", "objectcontactmoment")


def bestand_regels(pad: str):
    """(kind, item, audittrail) per line of an export file (`-`: stdin); kind is one of BESTAND_SOORTEN."""
    stroom = sys.stdin if pad == "-" else open(pad, encoding="utf-8")
    try:
        for nummer, regel in enumerate(stroom, 1):
            if not regel.strip():
                continue
            try:
                item = json.loads(regel)
            except ValueError:
                raise BronFout(f"line {nummer} of the file is not JSON") from None
            soort = next((k for k in BESTAND_SOORTEN if isinstance(item, dict) and k in item), None)
            if soort is None:
                raise BronFout(f"line {nummer} of the file is not an export line (no `klant` or `contactmoment`)")
            yield soort, item[soort], item.get("audittrail", [])
    finally:
        if stroom is not sys.stdin:
            stroom.close()


# ---------------------------------------------------------------------------------------------------------------
# report and progress
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Rapport:
    bron_aantal: int | None = None       # `count` as the source serves it (last page read)
    bron_gelezen: int = 0                # distinct klanten read
    bron_regels: int = 0                 # audit rows read
    nieuw: int = 0
    al_aanwezig: int = 0
    vervangen: int = 0
    regels_geschreven: int = 0
    geverifieerd: int = 0                # klanten identical to the source after the import
    ons_regels: int = 0                  # audit rows we hold for the source's klanten
    overgeslagen: list = field(default_factory=list)     # (uuid, reason): not importable
    conflicten: list = field(default_factory=list)       # (uuid, reason): left alone
    verdrongen: list = field(default_factory=list)       # (uuid, source uuid): our klant removed by --overwrite
    verschillen: list = field(default_factory=list)      # (uuid, [paths]): verification
    verdwenen: list = field(default_factory=list)        # uuids deleted in the source during the import
    extra: Counter = field(default_factory=Counter)      # field the standard does not have -> klanten
    conversies: Counter = field(default_factory=Counter)
    dubbel: int = 0                      # served twice by a shifting list (counted once)
    dry_run: bool = False
    # --from-contactmomenten: per kind (contactmomenten, klantcontactmomenten, objectcontactmomenten) the counts
    # count (served), gelezen, nieuw, al_aanwezig, vervangen, geverifieerd, bron_regels, regels_geschreven
    cm: dict = field(default_factory=dict)

    def cm_teller(self, soort: str) -> Counter:
        return self.cm.setdefault(soort, Counter())

    def _cm_schoon(self) -> bool:
        for c in self.cm.values():
            aanwezig = c["gelezen"] - c["verdwenen"]
            if c.get("count") is not None and c["count"] != aanwezig:
                return False
            if not self.dry_run and c["geverifieerd"] != aanwezig:
                return False
        return True

    @property
    def schoon(self) -> bool:
        """Nothing skipped, left alone or different, every klant read is here as served, and the count the
        source serves matches what was read."""
        if self.overgeslagen or self.conflicten or self.verschillen or not self._cm_schoon():
            return False
        aanwezig = self.bron_gelezen - len(self.verdwenen)
        if self.bron_aantal is not None and self.bron_aantal != aanwezig:
            return False
        return self.dry_run or self.geverifieerd == aanwezig

    def als_dict(self) -> dict:
        return {
            "bron": {"count": self.bron_aantal, "klanten_gelezen": self.bron_gelezen,
                     "audittrail_regels": self.bron_regels, "dubbel_geserveerd": self.dubbel,
                     "verdwenen_tijdens_import": [str(u) for u in self.verdwenen]},
            "ons": {"klanten_gelijk": self.geverifieerd, "audittrail_regels": self.ons_regels},
            "import": {"nieuw": self.nieuw, "al_aanwezig": self.al_aanwezig, "vervangen": self.vervangen,
                       "audittrail_regels_geschreven": self.regels_geschreven, "dry_run": self.dry_run},
            "overgeslagen": [{"uuid": str(u), "reden": r} for u, r in self.overgeslagen],
            "conflicten": [{"uuid": str(u), "reden": r} for u, r in self.conflicten],
            "verwijderd_door_overwrite": [{"uuid": str(u), "bron_klant": str(b)} for u, b in self.verdrongen],
            "verschillen": [{"uuid": str(u), "velden": p} for u, p in self.verschillen],
            "velden_niet_in_de_standaard": dict(sorted(self.extra.items())),
            "conversies": dict(sorted(self.conversies.items())),
            "contactmomenten": {soort: dict(sorted(c.items())) for soort, c in self.cm.items()},
            "schoon": self.schoon,
        }

    def tekst(self) -> str:
        r = []
        r.append("Import report" + (" (dry run: nothing written)" if self.dry_run else ""))
        r.append(f"  source:  {self.bron_gelezen} klanten read (count served: {self.bron_aantal}), "
                 f"{self.bron_regels} audit rows")
        if self.dubbel:
            r.append(f"           {self.dubbel} served twice by a list that shifted while it was read (counted once)")
        if self.verdwenen:
            r.append(f"           {len(self.verdwenen)} deleted in the source during the import")
        r.append(f"  import:  {self.nieuw} new, {self.al_aanwezig} already here and identical, {self.vervangen} "
                 f"overwritten, {self.regels_geschreven} audit rows written")
        if not self.dry_run:
            r.append(f"  here:    {self.geverifieerd} klanten identical to the source on the fields of 1.0.0, "
                     f"{self.ons_regels} audit rows")
        for titel, lijst in (("skipped (cannot be stored here)", self.overgeslagen),
                             ("conflicts (left alone; --overwrite replaces them)",
                              self.conflicten)):
            if lijst:
                r.append(f"  {titel}: {len(lijst)}")
                r.extend(f"    {u}: {reden}" for u, reden in lijst)
        if self.verdrongen:
            r.append(f"  removed by --overwrite (held the bronorganisatie and klantnummer of a source klant): "
                     f"{len(self.verdrongen)}")
            r.extend(f"    {u}: replaced by source klant {b}" for u, b in self.verdrongen)
        if self.verschillen:
            r.append(f"  differences after the import: {len(self.verschillen)}")
            r.extend(f"    {u}: {', '.join(p)}" for u, p in self.verschillen)
        if self.extra:
            r.append("  fields the standard does not have (not imported, not counted as differences):")
            r.extend(f"    {naam}: {n} klanten" for naam, n in sorted(self.extra.items()))
        if self.conversies:
            r.append("  conversions:")
            r.extend(f"    {naam}: {n}" for naam, n in sorted(self.conversies.items()))
        for soort, c in self.cm.items():
            r.append(f"  {soort}: source {c['gelezen']} read (count served: {c.get('count')}), "
                     f"{c['bron_regels']} audit rows; import {c['nieuw']} new, {c['al_aanwezig']} already here and "
                     f"identical, {c['vervangen']} overwritten, {c['regels_geschreven']} audit rows written"
                     + ("" if self.dry_run else f"; here {c['geverifieerd']} identical to the source")
                     + (f"; {c['verdwenen']} deleted in the source meanwhile" if c["verdwenen"] else ""))
        r.append("  result:  " + ("CLEAN: every klant and audit row of the source is here" if self.schoon
                                  else "DIFFERENCES: see above"))
        return "\n".join(r)


class Voortgang:
    """A bar with rate and time left on a terminal; a plain log line every few seconds otherwise."""

    def __init__(self, stream=sys.stderr, soort: str = "klanten"):
        self.stream = stream
        self.soort = soort
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self._laatst = 0.0

    def update(self, gedaan: int, totaal: int | None, *, klaar: bool = False) -> None:
        nu = time.monotonic()
        if not klaar and nu - self._laatst < (0.2 if self.tty else 5.0):
            return
        self._laatst = nu
        tempo = gedaan / max(1e-9, nu - self.start)
        totaal = max(totaal or 0, gedaan)
        rest = (totaal - gedaan) / tempo if tempo > 0 else 0.0
        if self.tty:
            vol = int(30 * gedaan / totaal) if totaal else 30
            self.stream.write(f"\rimport [{'#' * vol}{'-' * (30 - vol)}] {gedaan:,}/{totaal:,} {self.soort} "
                              f"{tempo:,.0f}/s, {rest:,.0f} s left " + ("\n" if klaar else ""))
        else:
            self.stream.write(f"import: {gedaan:,}/{totaal:,} {self.soort}, {tempo:,.0f}/s, {rest:,.0f} s left\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------------------------
# the import
# ---------------------------------------------------------------------------------------------------------------
class _GeenSubjectControle:
    """kla-002 is not run on an import unless asked (--check-subjects): the source checked its subjects."""

    def fout(self, subject, *, client_id=None):
        return None


@dataclass
class _Uitkomst:
    uuid: uuid_mod.UUID | None
    kandidaat: object = None          # service.importeren.Kandidaat
    reden: str | None = None          # not importable
    verdwenen: bool = False
    regels: int = 0


class Importeur:
    def __init__(self, engine: sa.Engine, settings: Settings, *, herschrijf: tuple = (), overschrijven: bool = False,
                 dry_run: bool = False, subjecten: bool = False, batch: int = 200, rapport: Rapport | None = None):
        from service.importeren import Herschrijving, Importregels
        from service.kla_002 import SubjectControle
        from service.klanten import KlantenService, Verzoek
        from service.validatie import SchemaValidatie
        from .app import load_spec
        spec = load_spec()
        controle = (SubjectControle(timeout=settings.subject_timeout, max_bytes=settings.subject_max_bytes,
                                    allowed_hosts=settings.subject_allowed_hosts)
                    if subjecten else _GeenSubjectControle())
        self.service = KlantenService(engine, SchemaValidatie(spec["components"]), controle, notificeren=False)
        self.regels = Importregels(self.service, Herschrijving(tuple(herschrijf)))
        # representations as klant_read serves them (the url is not compared: it carries only the uuid)
        self.verzoek = Verzoek(base_url=settings.base_url or "http://localhost")
        self.engine, self.settings = engine, settings
        self._cms = None
        self._cm_bron_uuids: set = set()       # contactmomenten the source brings (for a dry run's links)
        self.overschrijven, self.dry_run, self.batch = overschrijven, dry_run, batch
        self.rapport = rapport or Rapport(dry_run=dry_run)

    # ---- one source item ----
    def beoordeel(self, klant, audittrail) -> _Uitkomst:
        from service.importeren import Ongeldig, uuid_uit_url
        klant_uuid = uuid_uit_url(klant.get("url")) if isinstance(klant, dict) else None
        try:
            kandidaat = self.regels.kandidaat(klant, audittrail)
        except Ongeldig as exc:
            return _Uitkomst(klant_uuid, reden=str(exc), regels=len(audittrail) if isinstance(audittrail, list) else 0)
        return _Uitkomst(kandidaat.uuid, kandidaat=kandidaat, regels=len(audittrail))

    # ---- a batch ----
    def verwerk(self, uitkomsten: list[_Uitkomst]) -> None:
        r = self.rapport
        kandidaten = []
        for u in uitkomsten:
            r.bron_regels += u.regels
            if u.verdwenen:
                r.verdwenen.append(u.uuid)
            elif u.reden is not None:
                r.overgeslagen.append((u.uuid or "(no uuid)", u.reden))
                log.info("klant skipped", extra={"event": "import_overgeslagen", "klant": str(u.uuid)})
            else:
                k = u.kandidaat
                kandidaten.append(k)
                r.overgeslagen.extend((f"{k.uuid} audittrail[{naam}]", reden) for naam, reden in k.overgeslagen)
                r.extra.update(set(k.extra))
                r.conversies.update(k.conversies)
        if not kandidaten:
            return
        try:
            self._schrijf(kandidaten)
        except sa.exc.IntegrityError:
            # someone else wrote meanwhile (or the source serves a duplicate): one klant per transaction, so
            # only the klant that cannot go in stays out, with its reason
            for k in kandidaten:
                try:
                    self._schrijf([k])
                except sa.exc.IntegrityError as exc:
                    r.conflicten.append((k.uuid, _integriteit(exc)))
        if not self.dry_run:
            self._verifieer(kandidaten)

    def _schrijf(self, kandidaten: list) -> None:
        from storage.uow import UnitOfWork
        r = self.rapport
        tellers = Counter()
        nieuw, vervangen, conflicten, verdrongen = [], [], [], []
        bron_uuids = {k.uuid for k in kandidaten}
        with UnitOfWork(self.engine, schrijven=True) as uow:
            bestaand = uow.klanten.per_uuid(k.uuid for k in kandidaten)
            houders = uow.klanten.houders({k.paar for k in kandidaten})
            bestaande_regels = uow.audittrail.van_klanten([b.id for b in bestaand.values()])
            regel_houders = uow.audittrail.bestaande_uuids(reg["uuid"] for k in kandidaten for reg in k.regels)
            paren, regel_uuids = {}, set()
            for k in kandidaten:
                b = bestaand.get(k.uuid)
                houder = houders.get(k.paar)
                if houder is not None and houder != k.uuid:
                    if not self.overschrijven or houder in bron_uuids:
                        conflicten.append((k.uuid, f"bronorganisatie and klantnummer are held by klant {houder}"))
                        continue
                    # --overwrite: the source decides who holds the number; our klant that holds it goes (reported)
                    verdrongen.append((houder, k.uuid))
                if k.paar in paren:
                    conflicten.append((k.uuid, f"bronorganisatie and klantnummer also of source klant {paren[k.paar]}"))
                    continue
                eigen = {reg["uuid"] for reg in k.regels}
                elders = [u for u in eigen if u in regel_uuids
                          or (u in regel_houders and (b is None or regel_houders[u] != b.id))]
                if elders:
                    conflicten.append((k.uuid, f"audit row {elders[0]} belongs to another klant here"))
                    continue
                if b is not None:
                    anders = self.regels.zelfde(k, b.gegevens, bestaande_regels.get(b.id, []))
                    if not anders:
                        tellers["al_aanwezig"] += 1
                        paren[k.paar] = k.uuid
                        continue
                    if not self.overschrijven:
                        conflicten.append((k.uuid, "differs from the source in " + ", ".join(anders)))
                        continue
                    vervangen.append((b.id, k))
                else:
                    nieuw.append(k)
                paren[k.paar] = k.uuid
                regel_uuids |= eigen
            for houder, _ in verdrongen:
                houder_id = uow.klanten.id_van(houder)
                uow.audittrail.verwijder_van_klant(houder_id)
                uow.klanten.verwijderen(houder_id)
            ids = uow.klanten.toevoegen_veel([(k.uuid, k.gegevens, _aangemaakt(k)) for k in nieuw])
            audit = [(id, reg, "") for id, k in zip(ids, nieuw) for reg in k.regels]
            for id, k in vervangen:
                uow.klanten.bijwerken(id, k.gegevens)
                uow.audittrail.verwijder_van_klant(id)
                audit.extend((id, reg, "") for reg in k.regels)
            uow.audittrail.toevoegen_veel(audit)
            if not self.dry_run:
                # kla-001: later generated numbers continue after the imported ones (never colliding with them)
                hoogste: dict[str, int] = {}
                for k in nieuw + [k for _, k in vervangen]:
                    bron, nummer = k.paar
                    if nummer.isascii() and nummer.isdigit() and str(int(nummer)) == nummer:
                        hoogste[bron] = max(hoogste.get(bron, 0), int(nummer))
                for bron, nummer in hoogste.items():
                    uow.klanten.klantnummer_minstens(bron, nummer)
                uow.commit()
        # counted only once the transaction is through (a retried batch must not count twice)
        r.nieuw += len(nieuw)
        r.vervangen += len(vervangen)
        r.al_aanwezig += tellers["al_aanwezig"]
        r.regels_geschreven += len(audit)
        r.conflicten.extend(conflicten)
        r.verdrongen.extend(verdrongen)
        for u, _ in conflicten:
            log.info("klant left alone", extra={"event": "import_conflict", "klant": str(u)})
        for u, b in verdrongen:
            log.warning("klant removed by --overwrite", extra={"event": "import_verdrongen", "klant": str(u),
                                                               "bron_klant": str(b)})

    def _verifieer(self, kandidaten: list) -> None:
        from storage.uow import UnitOfWork
        r = self.rapport
        with UnitOfWork(self.engine) as uow:
            ons = uow.klanten.per_uuid(k.uuid for k in kandidaten)
            regels = uow.audittrail.van_klanten([b.id for b in ons.values()])
        for k in kandidaten:
            b = ons.get(k.uuid)
            weergave = self.service.weergave(k.uuid, b.gegevens, self.verzoek) if b is not None else None
            onze_regels = [self.service.audit_weergave(reg) for reg in regels.get(b.id, [])] if b is not None else []
            r.ons_regels += len(onze_regels)
            paden = self.regels.verschillen(k, weergave, onze_regels)
            if paden:
                r.verschillen.append((k.uuid, paden))
            else:
                r.geverifieerd += 1

    # ---- the whole run ----
    def uit_http(self, bron: HttpBron, *, werkers: int = 8, voortgang: Voortgang | None = None) -> Rapport:
        r = self.rapport
        gezien: set = set()
        klaar = 0

        def haal(klant, klant_uuid) -> _Uitkomst:
            regels = bron.audittrail(klant_uuid)
            if regels is None:
                return _Uitkomst(klant_uuid, verdwenen=True)
            return self.beoordeel(klant, regels)

        with concurrent.futures.ThreadPoolExecutor(werkers, thread_name_prefix="import") as pool:
            venster: deque = deque()
            batch: list = []

            def neem(n_over: int):
                nonlocal klaar
                while len(venster) > n_over:
                    batch.append(venster.popleft().result())
                    if len(batch) >= self.batch:
                        self.verwerk(batch)
                        klaar += len(batch)
                        batch.clear()
                        if voortgang:
                            voortgang.update(klaar, r.bron_aantal)

            try:
                from service.importeren import uuid_uit_url
                # Sources that page newest first (Open Klant 1.x) shift under concurrent writes: items already
                # read can come again (counted once) and others can move past us; read the list again until a
                # whole pass brings nothing new (at most three passes).
                for doorloop in range(3):
                    nieuw_gezien = 0
                    for count, klanten in bron.paginas():
                        r.bron_aantal = count if isinstance(count, int) else None
                        for klant in klanten:
                            u = uuid_uit_url(klant.get("url")) if isinstance(klant, dict) else None
                            if u is None:
                                r.overgeslagen.append(("(no uuid)", "url: no klant uuid at its end"))
                                continue
                            if u in gezien:
                                if doorloop == 0:
                                    r.dubbel += 1
                                continue
                            gezien.add(u)
                            nieuw_gezien += 1
                            r.bron_gelezen += 1
                            venster.append(pool.submit(haal, klant, u))
                            neem(werkers * 8)
                    if doorloop == 0 and (r.bron_aantal is None or r.bron_aantal == len(gezien)):
                        break
                    if doorloop > 0 and nieuw_gezien == 0:
                        break
                neem(0)
                if batch:
                    self.verwerk(batch)
                    klaar += len(batch)
                    batch.clear()
            except BaseException:
                for f in venster:
                    f.cancel()
                raise
        if voortgang:
            voortgang.update(klaar, r.bron_aantal, klaar=True)
        return r

    def uit_bestand(self, pad: str, *, voortgang: Voortgang | None = None) -> Rapport:
        r = self.rapport
        totaal = None
        if pad != "-" and Path(pad).is_file():
            with open(pad, "rb") as f:
                # klant lines (the export writes each line's kind as its first key)
                totaal = sum(1 for regel in f if regel.strip() and not regel.lstrip().startswith(
                    (b'{"contactmoment"', b'{"klantcontactmoment"', b'{"objectcontactmoment"')))
        r.bron_aantal = totaal
        batch, klaar, gezien = [], 0, set()
        cm_paren, relaties = [], {soort: [] for soort in RELATIES}
        for soort, klant, audittrail in bestand_regels(pad):
            if soort == "contactmoment":
                cm_paren.append((klant, audittrail))
                continue
            if soort != "klant":
                relaties[soort + "en"].append(klant)
                continue
            uitkomst = self.beoordeel(klant, audittrail)
            if uitkomst.uuid is not None and uitkomst.uuid in gezien:
                r.dubbel += 1
                continue
            gezien.add(uitkomst.uuid)
            r.bron_gelezen += 1
            batch.append(uitkomst)
            if len(batch) >= self.batch:
                self.verwerk(batch)
                klaar += len(batch)
                batch = []
                if voortgang:
                    voortgang.update(klaar, totaal)
        if batch:
            self.verwerk(batch)
            klaar += len(batch)
        if r.bron_aantal is None:
            r.bron_aantal = r.bron_gelezen
        if voortgang:
            voortgang.update(klaar, totaal, klaar=True)
        if cm_paren or any(relaties.values()):
            from service.importeren import uuid_uit_url
            # served twice in a file: once (as the klanten)
            uniek = {uuid_uit_url(cm.get("url")) if isinstance(cm, dict) else None: (cm, a) for cm, a in cm_paren}
            c = r.cm_teller("contactmomenten")
            c["count"] = c["gelezen"] = len(uniek)
            self.verwerk_contactmomenten(list(uniek.values()))
            for soort, items in relaties.items():
                self.verwerk_relaties(soort, [(None, items)])
                r.cm_teller(soort)["count"] = r.cm_teller(soort)["gelezen"]
        return r

    # ---- contactmomenten (--from-contactmomenten) ----
    def _cm_service(self):
        if getattr(self, "_cms", None) is None:
            from service.contactmomenten import ContactmomentenService
            from service.importeren import ContactmomentImportregels
            from .apis import Layout
            # only its representations are used: no fetches (diensten None), no notifications
            self._cms = ContactmomentenService(self.engine, self.service.schemas, None,
                                               Layout.from_settings(self.settings), notificeren=False)
            self.cm_regels = ContactmomentImportregels(self.regels)
        return self._cms

    def contactmomenten_uit_http(self, bron: HttpBron, *, werkers: int = 8,
                                 voortgang: Voortgang | None = None) -> Rapport:
        """Contactmomenten (with their audit trails), then klantcontactmomenten and objectcontactmomenten."""
        from service.importeren import uuid_uit_url
        self._cm_service()
        r = self.rapport
        c = r.cm_teller("contactmomenten")
        gezien, items = set(), []
        for count, lijst in bron.paginas("contactmomenten"):
            c["count"] = count if isinstance(count, int) else None
            for cm in lijst:
                u = uuid_uit_url(cm.get("url")) if isinstance(cm, dict) else None
                if u is None:
                    r.overgeslagen.append(("contactmoment (no uuid)", "url: no contactmoment uuid at its end"))
                elif u not in gezien:
                    gezien.add(u)
                    items.append((cm, u))
        c["gelezen"] = len(items)
        trails = []
        with concurrent.futures.ThreadPoolExecutor(werkers, thread_name_prefix="import") as pool:
            # the audit trails are what takes the time (one request per contactmoment): progress counts them
            for trail in pool.map(lambda item: bron.audittrail(item[1], "contactmomenten"), items):
                trails.append(trail)
                if voortgang:
                    voortgang.update(len(trails), len(items))
        if voortgang:
            voortgang.update(len(trails), len(items), klaar=True)
        self.verwerk_contactmomenten(list(zip((cm for cm, _ in items), trails)))
        for soort in RELATIES:
            paginas = ((count, lijst) for count, lijst in bron.paginas(soort))
            self.verwerk_relaties(soort, paginas)
        return r

    def verwerk_contactmomenten(self, paren: list) -> None:
        """(contactmoment, audittrail or None when it was deleted meanwhile) pairs: checked, ordered so that a
        predecessor is written before the contactmoment that names it, written in batches, verified."""
        from service.importeren import Ongeldig, uuid_uit_url
        self._cm_service()
        r, c = self.rapport, self.rapport.cm_teller("contactmomenten")
        kandidaten = {}
        for cm, trail in paren:
            u = uuid_uit_url(cm.get("url")) if isinstance(cm, dict) else None
            if trail is None:
                c["verdwenen"] += 1      # deleted in the source meanwhile (not in r.verdwenen: those are klanten)
                continue
            c["bron_regels"] += len(trail) if isinstance(trail, list) else 0
            try:
                k = self.cm_regels.kandidaat(cm, trail)
            except Ongeldig as exc:
                r.overgeslagen.append((f"contactmoment {u}", str(exc)))
                continue
            r.overgeslagen.extend((f"contactmoment {k.uuid} audittrail[{n}]", reden) for n, reden in k.overgeslagen)
            r.conversies.update(k.conversies)
            kandidaten[k.uuid] = k
        self._cm_bron_uuids |= set(kandidaten)
        # vorigContactmoment is a foreign key to a row that must exist: predecessors first (a chain's order)
        volgorde, geplaatst = [], set()
        for k in kandidaten.values():
            keten = []
            while k is not None and k.uuid not in geplaatst:
                geplaatst.add(k.uuid)
                keten.append(k)
                k = kandidaten.get(k.vorig_uuid) if k.vorig_uuid else None
            volgorde.extend(reversed(keten))
        for i in range(0, len(volgorde), self.batch):
            self._cm_schrijf(volgorde[i:i + self.batch])
        if not self.dry_run:
            self._cm_verifieer(volgorde)

    def _cm_schrijf(self, kandidaten: list) -> None:
        from storage.uow import UnitOfWork
        r, c = self.rapport, self.rapport.cm_teller("contactmomenten")
        tellers, uitkomst = Counter(), []
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                for k in kandidaten:
                    naam = f"contactmoment {k.uuid}"
                    vorig_id = None
                    if k.vorig_uuid is not None:
                        vorig_id = uow.contactmomenten.id_van(k.vorig_uuid)
                        # (a dry run commits nothing: a predecessor of an earlier batch counts as there)
                        if vorig_id is None and not (self.dry_run and k.vorig_uuid in self._cm_bron_uuids):
                            uitkomst.append(("overgeslagen", naam, "vorigContactmoment: not in the source nor here"))
                            continue
                    b = uow.contactmomenten.get(k.uuid)
                    if b is not None:
                        anders = self.cm_regels.zelfde(k, b.gegevens, b.vorig_uuid, uow.cm_audittrail.van(b.id))
                        if not anders:
                            tellers["al_aanwezig"] += 1
                            continue
                        if not self.overschrijven:
                            uitkomst.append(("conflict", naam, "differs from the source in " + ", ".join(anders)))
                            continue
                        uow.contactmomenten.bijwerken(b.id, k.gegevens, vorig_id)
                        uow.cm_audittrail.verwijder_van(b.id)
                        cm_id = b.id
                        tellers["vervangen"] += 1
                    else:
                        cm_id = uow.contactmomenten.toevoegen(k.uuid, k.gegevens, vorig_id, _aangemaakt(k))
                        tellers["nieuw"] += 1
                    for regel in k.regels:
                        uow.cm_audittrail.toevoegen(cm_id, regel, "")
                    tellers["regels_geschreven"] += len(k.regels)
                if not self.dry_run:
                    uow.commit()
        except sa.exc.IntegrityError:
            if len(kandidaten) == 1:
                r.conflicten.append((f"contactmoment {kandidaten[0].uuid}",
                                     "refused by the database (a uniqueness rule, e.g. vorigContactmoment taken)"))
                return
            for k in kandidaten:       # one per transaction: only what cannot go in stays out
                self._cm_schrijf([k])
            return
        c.update(tellers)
        for soort, naam, reden in uitkomst:
            (r.overgeslagen if soort == "overgeslagen" else r.conflicten).append((naam, reden))

    def _cm_verifieer(self, kandidaten: list) -> None:
        from service.importeren import cm_normaal
        from service.klanten import KlantenService
        from storage.uow import UnitOfWork
        r, c = self.rapport, self.rapport.cm_teller("contactmomenten")
        cms = self._cm_service()
        with UnitOfWork(self.engine) as uow:
            for k in kandidaten:
                b = uow.contactmomenten.get(k.uuid)
                if b is None:
                    r.verschillen.append((f"contactmoment {k.uuid}", ["contactmoment: missing"]))
                    continue
                ons = cm_normaal(cms.weergave(b, self.verzoek))
                regels = [KlantenService.audit_weergave(reg) for reg in uow.cm_audittrail.van(b.id)]
                paden = (self.regels_verschil(k.bron, ons)
                         + self.regels.regel_verschillen(k.bron_regels, regels))
                if paden:
                    r.verschillen.append((f"contactmoment {k.uuid}", paden))
                else:
                    c["geverifieerd"] += 1

    @staticmethod
    def regels_verschil(bron: dict, ons: dict) -> list[str]:
        from service.importeren import _verschil_paden
        return _verschil_paden(bron, ons, "")

    def verwerk_relaties(self, soort: str, paginas) -> None:
        """klantcontactmomenten / objectcontactmomenten, from (count, items) pages: written, then verified."""
        from service.importeren import Ongeldig, cm_normaal, uuid_uit_url
        self._cm_service()
        r, c = self.rapport, self.rapport.cm_teller(soort)
        url_veld, keuze_veld, _ = RELATIES[soort]
        gezien, kandidaten = set(), []
        for count, lijst in paginas:
            c["count"] = count if isinstance(count, int) else None
            for item in lijst:
                u = uuid_uit_url(item.get("url")) if isinstance(item, dict) else None
                if u is not None and u in gezien:
                    continue
                gezien.add(u)
                c["gelezen"] += 1
                try:
                    k = self.cm_regels.relatie(item, url_veld, keuze_veld)
                except Ongeldig as exc:
                    r.overgeslagen.append((f"{soort[:-2]} {u}", str(exc)))
                    continue
                bron = cm_normaal(item)
                bron[url_veld] = k.url
                kandidaten.append((k, bron))
        for i in range(0, len(kandidaten), self.batch):
            self._relaties_schrijf(soort, [k for k, _ in kandidaten[i:i + self.batch]])
        if self.dry_run:
            return
        from storage.uow import UnitOfWork
        cms = self._cm_service()
        with UnitOfWork(self.engine) as uow:
            repo = getattr(uow, soort)
            for k, bron in kandidaten:
                b = repo.get(k.uuid)
                ons = cm_normaal(cms.relatie_weergave(soort, b, self.verzoek)) if b is not None else None
                paden = ["missing"] if ons is None else self.regels_verschil(bron, ons)
                if paden:
                    r.verschillen.append((f"{soort[:-2]} {k.uuid}", paden))
                else:
                    c["geverifieerd"] += 1

    def _relaties_schrijf(self, soort: str, kandidaten: list) -> None:
        from storage.uow import UnitOfWork
        r, c = self.rapport, self.rapport.cm_teller(soort)
        url_veld, keuze_veld, _ = RELATIES[soort]
        tellers, uitkomst = Counter(), []
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                repo = getattr(uow, soort)
                for k in kandidaten:
                    naam = f"{soort[:-2]} {k.uuid}"
                    cm_id = uow.contactmomenten.id_van(k.contactmoment_uuid)
                    if cm_id is None and self.dry_run and k.contactmoment_uuid in self._cm_bron_uuids:
                        tellers["nieuw"] += 1
                        continue
                    if cm_id is None:
                        uitkomst.append(("overgeslagen", naam, "contactmoment: not here (not imported)"))
                        continue
                    b = repo.get(k.uuid)
                    if b is not None:
                        if (b.contactmoment_uuid, b.gegevens[url_veld], b.gegevens[keuze_veld]) == \
                                (k.contactmoment_uuid, k.url, k.keuze):
                            tellers["al_aanwezig"] += 1
                            continue
                        if not self.overschrijven:
                            uitkomst.append(("conflict", naam, "differs from the source"))
                            continue
                        repo.verwijderen(b.id)
                        tellers["vervangen"] += 1
                    else:
                        tellers["nieuw"] += 1
                    repo.toevoegen(k.uuid, cm_id, k.url, k.keuze)
                if not self.dry_run:
                    uow.commit()
        except sa.exc.IntegrityError:
            if len(kandidaten) == 1:
                r.conflicten.append((f"{soort[:-2]} {kandidaten[0].uuid}",
                                     "refused by the database (the same relation under another uuid)"))
                return
            for k in kandidaten:
                self._relaties_schrijf(soort, [k])
            return
        c.update(tellers)
        for s, naam, reden in uitkomst:
            (r.overgeslagen if s == "overgeslagen" else r.conflicten).append((naam, reden))


# the relation kinds: list resource -> (URL field, choice field, export key)
RELATIES = {"klantcontactmomenten": ("klant", "rol", "klantcontactmoment"),
            "objectcontactmomenten": ("object", "objectType", "objectcontactmoment")}


def _aangemaakt(kandidaat) -> dt.datetime:
    """When the klant came to exist: its oldest audit row, else now."""
    momenten = [reg["aanmaakdatum"] for reg in kandidaat.regels]
    return min(momenten) if momenten else dt.datetime.now(dt.timezone.utc)


def _integriteit(exc: sa.exc.IntegrityError) -> str:
    from storage.uow import is_unique_violation
    if is_unique_violation(exc, "uq_klant_bronorganisatie_klantnummer", ("bronorganisatie", "klantnummer")):
        return "bronorganisatie and klantnummer were taken meanwhile"
    if is_unique_violation(exc, "uq_klant_uuid", ("klant.uuid",)):
        return "the uuid was taken meanwhile"
    return "refused by the database (a uniqueness rule)"


# ---------------------------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------------------------
def _herschrijvingen(waarden) -> list[tuple[str, str]]:
    uit = []
    for w in waarden or ():
        oud, sep, nieuw = w.partition("=")
        if not sep or not oud.startswith(("http://", "https://")) or not nieuw.startswith(("http://", "https://")):
            raise ConfigError(f"--rewrite-base takes OLD=NEW, two URL prefixes; got {w!r}")
        uit.append((oud, nieuw))
    return uit


def cmd_import(args, settings: Settings) -> int:
    from storage.database import make_engine
    from .logging import configure_logging
    configure_logging()
    if args.from_file and (args.from_url or args.from_contactmomenten):
        raise ConfigError("give --from-file FILE, or --from URL and/or --from-contactmomenten URL")
    if not (args.from_url or args.from_file or args.from_contactmomenten):
        raise ConfigError("give --from URL, --from-contactmomenten URL or --from-file FILE")
    secret = args.secret or ""
    if args.secret_file:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    if args.client_id and not secret:
        raise ConfigError("--client-id needs --secret or --secret-file")

    def inloggegevens(root: str) -> tuple[str, str]:
        """--client-id/--secret when given; else the KLANTEN_SERVICES_CONFIG service named by --service (its
        apiRoot, or a prefix of it) or whose apiRoot the source URL starts with."""
        if args.client_id:
            return args.client_id, secret
        from service.diensten import lees_diensten
        diensten = lees_diensten(settings.services_config)
        naam = (args.service or root).rstrip("/") + "/"
        dienst = next((d for d in sorted(diensten, key=lambda d: -len(d.api_root))
                       if naam.startswith(d.api_root) or d.api_root.startswith(naam)), None)
        if dienst is None and args.service:
            raise ConfigError("--service: no service in KLANTEN_SERVICES_CONFIG has that apiRoot")
        return (dienst.client_id, dienst.secret) if dienst else ("", "")
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=2,
                         statement_timeout_ms=settings.db_statement_timeout_ms,
                         lock_timeout_ms=settings.db_lock_timeout_ms)
    if engine.dialect.name == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _eigen_plannen(dbapi_conn, _record):
            # The register grows from (nearly) nothing during an import. psycopg prepares a statement after a few
            # executions, and PostgreSQL may then keep one generic plan for it, made while the table was small:
            # a scan, which makes every batch slower than the last (seen: 240/s falling under 100/s at 90,000
            # klanten). Plans for these bulk reads are made for their own parameters instead.
            with dbapi_conn.cursor() as cur:
                cur.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_conn.commit()
    importeur = Importeur(engine, settings, herschrijf=_herschrijvingen(args.rewrite_base),
                          overschrijven=args.overwrite, dry_run=args.dry_run, subjecten=args.check_subjects,
                          batch=args.batch)
    voortgang = None if args.quiet else Voortgang()
    try:
        if args.from_file:
            rapport = importeur.uit_bestand(args.from_file, voortgang=voortgang)
        else:
            rapport = importeur.rapport
            if args.from_url:
                client_id, geheim = inloggegevens(args.from_url)
                bron = HttpBron(args.from_url, client_id=client_id, secret=geheim, timeout=args.timeout,
                                pogingen=args.retries)
                rapport = importeur.uit_http(bron, werkers=args.workers, voortgang=voortgang)
            if args.from_contactmomenten:
                # after the klanten: nothing is fetched or checked, but a rerun finds the klanten in place first
                client_id, geheim = inloggegevens(args.from_contactmomenten)
                cm_bron = HttpBron(args.from_contactmomenten, client_id=client_id, secret=geheim,
                                   timeout=args.timeout, pogingen=args.retries)
                rapport = importeur.contactmomenten_uit_http(
                    cm_bron, werkers=args.workers,
                    voortgang=None if args.quiet else Voortgang(soort="contactmomenten"))
    except BronFout as exc:
        print(f"klanten-api import: {exc}. What was imported so far is kept; run the same command again to "
              "continue.", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\nklanten-api import: interrupted. What was imported so far is kept; run the same command again "
              "to continue.", file=sys.stderr)
        return 130
    finally:
        engine.dispose()
    print(rapport.tekst())
    if args.report:
        Path(args.report).write_text(json.dumps(rapport.als_dict(), indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return 0 if rapport.schoon else 1


def add_commands(sub) -> None:
    imp = sub.add_parser("import", help="move in from another Klanten API (or an export file), keeping uuids")
    imp.add_argument("--from", dest="from_url", metavar="URL",
                     help="API root of the source, as clients configure it (https://old.example/api/v1)")
    imp.add_argument("--from-contactmomenten", metavar="URL",
                     help="API root of the source's Contactmomenten API: contactmomenten, klantcontactmomenten "
                          "and objectcontactmomenten")
    imp.add_argument("--from-file", metavar="FILE", help="an export file (JSON Lines; - for stdin)")
    imp.add_argument("--service", metavar="NAME_OR_ROOT",
                     help="take client id and secret from the KLANTEN_SERVICES_CONFIG service with this apiRoot "
                          "(default: the service whose apiRoot the source URL starts with)")
    imp.add_argument("--client-id", help="client id of a ZGW JWT for the source")
    imp.add_argument("--secret", help="its secret (or --secret-file)")
    imp.add_argument("--secret-file", help="a file holding the secret")
    imp.add_argument("--rewrite-base", action="append", metavar="OLD=NEW",
                     help="rewrite URLs of the old server in audit rows and klantcontactmomenten (repeatable)")
    imp.add_argument("--overwrite", action="store_true",
                     help="replace a klant of the same uuid whose content differs from the source")
    imp.add_argument("--check-subjects", action="store_true", help="run kla-002 on every imported subject URL")
    imp.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
    imp.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    imp.add_argument("--workers", type=int, default=8, help="concurrent requests to the source (default 8)")
    imp.add_argument("--batch", type=int, default=200, help="klanten per transaction (default 200)")
    imp.add_argument("--timeout", type=float, default=30.0, help="seconds per request to the source")
    imp.add_argument("--retries", type=int, default=8, help="attempts per request before giving up")
    imp.add_argument("--quiet", action="store_true", help="no progress output")
    imp.set_defaults(func=cmd_import)
    from .exporteren import cmd_export
    exp = sub.add_parser("export", help="write every klant and its audit trail as JSON Lines")
    exp.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    exp.add_argument("--base-url", help="scheme://host[:port] of the klant URLs (default: KLANTEN_BASE_URL)")
    exp.set_defaults(func=cmd_export)
