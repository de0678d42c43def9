"""Moving in from another KRC (DECISIONS #28): what a klant and its audit trail from another Klanten API
become here, and whether what we hold is what the source serves.

No I/O here: `klanten_api/importeren.py` reads the source and writes through the repositories. A source klant is
validated as a create is (11-proef, lengths, enums, the subject rule), but keeps its uuid and klantnummer
(no kla-001) and fetches no subject (kla-002) unless asked. Audit rows are kept as the source serves them; only
a `bron` outside the spec's enum (the reference's and Open Klant's "Klanten") becomes "kc", and URLs of the old
server are rewritten when the operator says so (--rewrite-base). Fields the standard does not have (Open Klant
1.x's `aanmaakkanaal`, `geverifieerd`) are not stored; they are listed, never counted as differences.
Reasons name fields and codes, never values: they end up in reports and logs.
"""
from __future__ import annotations

import datetime as dt
import uuid as uuid_mod
from dataclasses import dataclass, field

from klanten_api.errors import ValidatieFout
from storage import audittrail as audit_opslag
from storage.tables import audittrail as audittrail_tabel
from .klanten import SUBJECT_SCHEMAS, KlantenService

# validation stand-in for a blank websiteUrl (below); never stored
_WEBSITE_PLAATSHOUDER = "https://plaatshouder.invalid"


class Ongeldig(Exception):
    """A source item that cannot be stored here; the message names fields and codes only."""


@dataclass(frozen=True)
class Herschrijving:
    """--rewrite-base OLD=NEW: URLs that start with OLD start with NEW here (the first pair that matches)."""
    paren: tuple[tuple[str, str], ...] = ()

    def url(self, waarde):
        if isinstance(waarde, str):
            for oud, nieuw in self.paren:
                if waarde.startswith(oud):
                    return nieuw + waarde[len(oud):]
        return waarde


def uuid_uit_url(url) -> uuid_mod.UUID | None:
    """The klant uuid at the end of a klant URL (any base path: match on the uuid, not the prefix)."""
    if not isinstance(url, str):
        return None
    try:
        return uuid_mod.UUID(url.rstrip("/").rsplit("/", 1)[-1])
    except ValueError:
        return None


def tijdstip(waarde) -> dt.datetime:
    """An ISO 8601 date-time as an aware datetime (naive values, such as SQLite's, are UTC)."""
    if isinstance(waarde, str):
        waarde = dt.datetime.fromisoformat(waarde.replace("Z", "+00:00"))
    if not isinstance(waarde, dt.datetime):
        raise ValueError("not a date-time")
    return waarde if waarde.tzinfo is not None else waarde.replace(tzinfo=dt.timezone.utc)


@dataclass
class Kandidaat:
    """A source klant as it will be stored here, and the source's own view of it for the verification."""
    uuid: uuid_mod.UUID
    gegevens: dict                       # the stored klant (API names, as KlantenRepository takes it)
    regels: list[dict]                   # audit rows to store (storage.audittrail.VELDEN)
    bron: dict                           # the source representation: fields of 1.0.0 only, no url, normalised
    bron_regels: dict                    # audit uuid -> source row, normalised (also rows that cannot be stored)
    extra: list[str] = field(default_factory=list)         # paths of fields the standard does not have
    conversies: list[str] = field(default_factory=list)    # documented conversions applied
    overgeslagen: list[tuple[str, str]] = field(default_factory=list)   # (audit row, reason)

    @property
    def paar(self) -> tuple[str, str]:
        return self.gegevens["bronorganisatie"], self.gegevens["klantnummer"]


class Importregels:
    def __init__(self, service: KlantenService, herschrijving: Herschrijving = Herschrijving()):
        self.service = service
        self.schemas = service.schemas
        self.herschrijving = herschrijving
        self.audit_bronnen = tuple(self.schemas.properties("AuditTrail")["bron"]["enum"])
        self.audit_lengtes = {veld: getattr(audittrail_tabel.c[kolom].type, "length", None)
                              for veld, kolom in audit_opslag.VELDEN}

    # ---------- the klant ----------
    def kandidaat(self, klant: dict, audittrail: list) -> Kandidaat:
        if not isinstance(klant, dict):
            raise Ongeldig("klant: not an object")
        klant_uuid = uuid_uit_url(klant.get("url"))
        if klant_uuid is None:
            raise Ongeldig("url: no klant uuid at its end")
        conversies, extra = [], []
        body = {k: v for k, v in klant.items() if k != "url"}
        if body.get("subjectType") == "":
            # the reference and Open Klant accept "" and serve it; the spec's enum has null for "no type"
            body["subjectType"] = None
            conversies.append("subjectType '' -> null")
        if not isinstance(body.get("klantnummer"), str) or not body["klantnummer"].strip():
            raise Ongeldig("klantnummer: required (an import keeps the source's numbers, it generates none)")
        website_leeg = body.get("websiteUrl") == ""
        if website_leeg:
            # Open Klant 1.x made websiteUrl optional; such a klant keeps "" here rather than being left out
            body["websiteUrl"] = _WEBSITE_PLAATSHOUDER
            conversies.append("websiteUrl '' kept")
        try:
            gegevens = self.service.gegevens_voor_import(body)
        except ValidatieFout as fout:
            raise Ongeldig("; ".join(f"{p.name}: {p.code}" for p in fout.invalid_params)) from None
        if website_leeg:
            gegevens["websiteUrl"] = ""
        bron = self._beperkt(body, "Klant", "", extra)
        if website_leeg:
            bron["websiteUrl"] = ""
        subject_type = body.get("subjectType")
        if subject_type in SUBJECT_SCHEMAS:
            sid = body.get("subjectIdentificatie")
            bron["subjectIdentificatie"] = (self._beperkt(sid, SUBJECT_SCHEMAS[subject_type], "subjectIdentificatie.",
                                                          extra) if isinstance(sid, dict) else sid)
        elif "subjectIdentificatie" in body and body["subjectIdentificatie"] is not None:
            extra.append("subjectIdentificatie (without a subjectType)")
        bron.setdefault("adres", None)

        regels, bron_regels, overgeslagen = [], {}, []
        if not isinstance(audittrail, list):
            raise Ongeldig("audittrail: not a list")
        for i, ruw in enumerate(audittrail):
            try:
                opgeslagen, genormaliseerd = self.regel(ruw, conversies)
            except Ongeldig as exc:
                naam = ruw.get("uuid") if isinstance(ruw, dict) and isinstance(ruw.get("uuid"), str) else f"#{i}"
                overgeslagen.append((str(naam), str(exc)))
                if isinstance(ruw, dict) and isinstance(ruw.get("uuid"), str):
                    bron_regels[str(ruw["uuid"])] = ruw
                continue
            sleutel = str(opgeslagen["uuid"])
            if sleutel in bron_regels:
                continue                       # served twice (pages that shifted): one row
            bron_regels[sleutel] = genormaliseerd
            regels.append(opgeslagen)
        return Kandidaat(klant_uuid, gegevens, regels, bron, bron_regels, extra, conversies, overgeslagen)

    def _beperkt(self, waarde: dict, schema_naam: str, pad: str, extra: list[str]) -> dict:
        """`waarde` restricted to the properties of a schema (recursively); other keys are noted in `extra`."""
        props = self.schemas.properties(schema_naam)
        uit = {}
        for naam, w in waarde.items():
            prop = props.get(naam)
            if prop is None:
                if not (schema_naam == "Klant" and naam == "subjectIdentificatie"):
                    extra.append(pad + naam)
                continue
            if prop.get("readOnly"):
                continue
            ref = prop.get("$ref")
            uit[naam] = self._beperkt(w, ref.rsplit("/", 1)[-1], f"{pad}{naam}.", extra) \
                if ref and isinstance(w, dict) else w
        return uit

    # ---------- an audit row ----------
    def regel(self, ruw, conversies: list[str], standaard: str = "kc") -> tuple[dict, dict]:
        """(the row to store, the source row normalised for comparison). Kept as served except `bron` outside
        the enum (`standaard`: "kc", "cmc" for a contactmoment's row) and rewritten URLs; raises Ongeldig when
        our storage cannot hold it."""
        if not isinstance(ruw, dict):
            raise Ongeldig("not an object")
        ontbreekt = [veld for veld, _ in audit_opslag.VELDEN if veld not in ruw]
        if ontbreekt:
            raise Ongeldig("missing: " + ", ".join(ontbreekt))
        regel = {veld: ruw[veld] for veld, _ in audit_opslag.VELDEN}
        try:
            regel["uuid"] = uuid_mod.UUID(str(ruw["uuid"]))
        except ValueError:
            raise Ongeldig("uuid: invalid") from None
        try:
            regel["aanmaakdatum"] = tijdstip(ruw["aanmaakdatum"])
        except (ValueError, TypeError):
            raise Ongeldig("aanmaakdatum: invalid") from None
        if regel["bron"] not in self.audit_bronnen:
            regel["bron"] = standaard
            conversies.append(f"audit bron -> {standaard}")
        if isinstance(regel["resultaat"], bool) or not isinstance(regel["resultaat"], int):
            raise Ongeldig("resultaat: not an integer")
        for veld in ("hoofdObject", "resourceUrl"):
            regel[veld] = self.herschrijving.url(regel[veld])
        wijzigingen = regel["wijzigingen"]
        if not isinstance(wijzigingen, dict):
            raise Ongeldig("wijzigingen: not an object")
        regel["wijzigingen"] = {k: ({**v, "url": self.herschrijving.url(v["url"])}
                                    if isinstance(v, dict) and "url" in v else v)
                                for k, v in wijzigingen.items()}
        for veld, lengte in self.audit_lengtes.items():
            if veld in ("uuid", "aanmaakdatum", "resultaat", "wijzigingen"):
                continue
            if not isinstance(regel[veld], str):
                raise Ongeldig(f"{veld}: not a string")
            if lengte is not None and len(regel[veld]) > lengte:
                raise Ongeldig(f"{veld}: longer than {lengte}")
        return regel, {**regel, "uuid": str(regel["uuid"])}

    # ---------- comparisons ----------
    @staticmethod
    def _canon_regels(regels) -> dict:
        return {str(r["uuid"]): {**r, "uuid": str(r["uuid"]), "aanmaakdatum": tijdstip(r["aanmaakdatum"])}
                for r in regels}

    def zelfde(self, kandidaat: Kandidaat, gegevens: dict, regels: list[dict]) -> list[str]:
        """The fields in which what we hold differs from what the import would write ([] : identical)."""
        uit = [k for k in sorted(set(kandidaat.gegevens) | set(gegevens))
               if kandidaat.gegevens.get(k) != gegevens.get(k)]
        if self._canon_regels(kandidaat.regels) != self._canon_regels(regels):
            uit.append("audittrail")
        return uit

    def verschillen(self, kandidaat: Kandidaat, weergave: dict | None, regels: list[dict]) -> list[str]:
        """The verification: our representation (as klant_read and audittrail_list serve it) against the
        source's, on the fields of 1.0.0 (paths of what differs; [] : identical)."""
        if weergave is None:
            return ["klant: missing"]
        ons = {k: v for k, v in weergave.items() if k != "url"}
        return _verschil_paden(kandidaat.bron, ons, "") + self.regel_verschillen(kandidaat.bron_regels, regels)

    @staticmethod
    def regel_verschillen(bron_regels: dict, regels: list[dict]) -> list[str]:
        """Audit rows as served here against the source's (normalised) rows: paths of what differs."""
        uit = []
        onze_regels = {str(r["uuid"]): r for r in regels}
        for sleutel, bron_regel in bron_regels.items():
            r = onze_regels.pop(sleutel, None)
            if r is None:
                uit.append(f"audittrail[{sleutel}]: missing")
                continue
            for veld, _ in audit_opslag.VELDEN:
                a, b = bron_regel.get(veld), r.get(veld)
                if veld == "aanmaakdatum":
                    try:
                        gelijk = tijdstip(a) == tijdstip(b)
                    except (ValueError, TypeError):
                        gelijk = False
                else:
                    gelijk = str(a) == str(b) if veld == "uuid" else a == b
                if not gelijk:
                    uit.append(f"audittrail[{sleutel}].{veld}")
        uit.extend(f"audittrail[{sleutel}]: not in the source" for sleutel in onze_regels)
        return uit


def _verschil_paden(bron, ons, pad: str) -> list[str]:
    if isinstance(bron, dict) and isinstance(ons, dict):
        uit = []
        for k in list(bron) + [k for k in ons if k not in bron]:
            uit.extend(_verschil_paden(bron.get(k), ons.get(k), f"{pad}{k}."))
        return uit
    return [] if bron == ons else [pad.rstrip(".")]



# ---------------------------------------------------------------------------------------------------------------
# contactmomenten (`--from-contactmomenten`): the same rules, for a Contactmomenten API 1.0 source
# ---------------------------------------------------------------------------------------------------------------
CM_TEKSTEN = ("bronorganisatie", "kanaal", "voorkeurskanaal", "voorkeurstaal", "tekst", "initiatiefnemer",
              "medewerker")
MW_TEKSTEN = ("identificatie", "achternaam", "voorletters", "voorvoegselAchternaam")
CM_LINKS = ("url", "vorigContactmoment", "volgendContactmoment", "contactmoment")


@dataclass
class CmKandidaat:
    """A source contactmoment as it will be stored here (without its vorigContactmoment link, set afterwards)."""
    uuid: uuid_mod.UUID
    gegevens: dict                       # as ContactmomentenRepository takes it
    vorig_uuid: uuid_mod.UUID | None
    regels: list[dict]
    bron: dict                           # the source representation, normalised (cm_normaal)
    bron_regels: dict
    conversies: list[str] = field(default_factory=list)
    overgeslagen: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RelatieKandidaat:
    uuid: uuid_mod.UUID
    contactmoment_uuid: uuid_mod.UUID
    url: str                             # klant / object, after --rewrite-base
    keuze: str                           # rol / objectType


def cm_normaal(weergave: dict) -> dict:
    """A contactmoment or relation representation for comparison: links as the uuid they name (the bases differ
    by design), registratiedatum as an instant, no volgendContactmoment (derived from vorigContactmoment)."""
    uit = {}
    for k, w in weergave.items():
        if k == "volgendContactmoment":
            continue
        if k in CM_LINKS:
            w = uuid_uit_url(w)
        elif k == "registratiedatum":
            try:
                w = tijdstip(w)
            except (ValueError, TypeError):
                pass
        uit[k] = w
    uit.pop("url", None)
    return uit


class ContactmomentImportregels:
    """Validation for storage (types and column lengths, no cm-00x fetches: the source checked them)."""

    def __init__(self, importregels: Importregels):
        from storage.tables import contactmoment as cm_tabel
        self.importregels = importregels
        self.herschrijving = importregels.herschrijving
        self.lengtes = {veld: getattr(cm_tabel.c[kolom].type, "length", None) for veld, kolom in (
            ("bronorganisatie", "bronorganisatie"), ("kanaal", "kanaal"), ("voorkeurskanaal", "voorkeurskanaal"),
            ("voorkeurstaal", "voorkeurstaal"), ("tekst", "tekst"), ("initiatiefnemer", "initiatiefnemer"),
            ("medewerker", "medewerker"), ("mw.identificatie", "mw_identificatie"),
            ("mw.achternaam", "mw_achternaam"), ("mw.voorletters", "mw_voorletters"),
            ("mw.voorvoegselAchternaam", "mw_voorvoegsel_achternaam"))}

    def _tekst(self, waarde, veld: str) -> str:
        if waarde is None:
            waarde = ""
        if not isinstance(waarde, str):
            raise Ongeldig(f"{veld}: not a string")
        lengte = self.lengtes.get(veld)
        if lengte is not None and len(waarde) > lengte:
            raise Ongeldig(f"{veld}: longer than {lengte}")
        return waarde

    def kandidaat(self, cm, audittrail) -> CmKandidaat:
        if not isinstance(cm, dict):
            raise Ongeldig("contactmoment: not an object")
        cm_uuid = uuid_uit_url(cm.get("url"))
        if cm_uuid is None:
            raise Ongeldig("url: no contactmoment uuid at its end")
        vorig = cm.get("vorigContactmoment")
        vorig_uuid = uuid_uit_url(vorig) if vorig else None
        if vorig and vorig_uuid is None:
            raise Ongeldig("vorigContactmoment: no contactmoment uuid at its end")
        g = {veld: self._tekst(cm.get(veld), veld) for veld in CM_TEKSTEN}
        try:
            g["registratiedatum"] = tijdstip(cm.get("registratiedatum"))
        except (ValueError, TypeError):
            raise Ongeldig("registratiedatum: invalid") from None
        links = cm.get("onderwerpLinks") or []
        if not isinstance(links, list) or not all(isinstance(l, str) for l in links):
            raise Ongeldig("onderwerpLinks: not a list of URLs")
        g["onderwerpLinks"] = list(links)
        mw = cm.get("medewerkerIdentificatie")
        if mw is not None and not isinstance(mw, dict):
            raise Ongeldig("medewerkerIdentificatie: not an object")
        g["medewerkerIdentificatie"] = ({veld: self._tekst(mw.get(veld), f"mw.{veld}") for veld in MW_TEKSTEN}
                                        if mw else None)
        if not isinstance(audittrail, list):
            raise Ongeldig("audittrail: not a list")
        conversies, regels, bron_regels, overgeslagen = [], [], {}, []
        for i, ruw in enumerate(audittrail):
            try:
                opgeslagen, genormaliseerd = self.importregels.regel(ruw, conversies, standaard="cmc")
            except Ongeldig as exc:
                naam = ruw.get("uuid") if isinstance(ruw, dict) and isinstance(ruw.get("uuid"), str) else f"#{i}"
                overgeslagen.append((str(naam), str(exc)))
                if isinstance(ruw, dict) and isinstance(ruw.get("uuid"), str):
                    bron_regels[str(ruw["uuid"])] = ruw
                continue
            sleutel = str(opgeslagen["uuid"])
            if sleutel not in bron_regels:
                bron_regels[sleutel] = genormaliseerd
                regels.append(opgeslagen)
        bron = cm_normaal(cm)
        if bron.get("medewerkerIdentificatie") is None:
            bron.pop("medewerkerIdentificatie", None)
        return CmKandidaat(cm_uuid, g, vorig_uuid, regels, bron, bron_regels, conversies, overgeslagen)

    def zelfde(self, k: CmKandidaat, gegevens: dict, vorig_uuid, regels: list[dict]) -> list[str]:
        # registratiedatum as an instant: SQLite gives it back without a zone
        gegevens = {**gegevens, "registratiedatum": tijdstip(gegevens["registratiedatum"])}
        uit = [veld for veld in sorted(set(k.gegevens) | set(gegevens)) if k.gegevens.get(veld) != gegevens.get(veld)]
        if k.vorig_uuid != vorig_uuid:
            uit.append("vorigContactmoment")
        canon = Importregels._canon_regels
        if canon(k.regels) != canon(regels):
            uit.append("audittrail")
        return uit

    def relatie(self, item, url_veld: str, keuze_veld: str) -> RelatieKandidaat:
        if not isinstance(item, dict):
            raise Ongeldig("not an object")
        u, cm_uuid = uuid_uit_url(item.get("url")), uuid_uit_url(item.get("contactmoment"))
        if u is None:
            raise Ongeldig("url: no uuid at its end")
        if cm_uuid is None:
            raise Ongeldig("contactmoment: no contactmoment uuid at its end")
        url = self.herschrijving.url(item.get(url_veld))
        if not isinstance(url, str) or not url or len(url) > 1000:
            raise Ongeldig(f"{url_veld}: not a URL of at most 1000 characters")
        keuze = item.get(keuze_veld)
        if not isinstance(keuze, str) or len(keuze) > 20:
            raise Ongeldig(f"{keuze_veld}: not a string of at most 20 characters")
        return RelatieKandidaat(u, cm_uuid, url, keuze)
