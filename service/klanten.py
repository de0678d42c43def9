"""The use cases of the Klanten API: one function per operation, the rules in one place.

A writing use case validates first (outside any transaction: kla-002 makes an HTTP call), then does
everything in one unit of work: the klant, its audit row and its notification (outbox) row commit
together or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid as uuid_mod
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa

from klanten_api.errors import InvalidParam, NietGevonden, ValidatieFout, VoorwaardeNietVervuld
from klanten_api import tracing
from klanten_api.etag import etag_van, if_match
from storage.klanten import Klant, KlantnummersUitgeput
from storage.uow import AuditRegel, Bericht, UnitOfWork, is_unique_violation
from . import validatie as v
from .constants import ACTIES, COMPONENT, KANAAL, RESOURCE, SUBJECT_TYPES, TOELICHTING_MAX_LENGTE
from .elfproef import elfproef_fout

PAGINAGROOTTE = 100
ONGELDIGE_PAGINA = "Ongeldige pagina."
SUBJECT_SCHEMAS = {"natuurlijk_persoon": "NatuurlijkPersoon", "niet_natuurlijk_persoon": "NietNatuurlijkPersoon",
                   "vestiging": "Vestiging"}
GENEREER_POGINGEN = 5

# query parameter -> column; exact, case-sensitive matching, AND-ed
FILTERS = {
    "bronorganisatie": "bronorganisatie", "klantnummer": "klantnummer", "bedrijfsnaam": "bedrijfsnaam",
    "functie": "functie", "achternaam": "achternaam", "telefoonnummer": "telefoonnummer",
    "emailadres": "emailadres", "adres__straatnaam": "adres_straatnaam", "adres__postcode": "adres_postcode",
    "adres__woonplaatsNaam": "adres_woonplaatsnaam", "adres__landcode": "adres_landcode", "subject": "subject",
    "subjectType": "subject_type",
    "subjectNatuurlijkPersoon__inpBsn": "zoek_inp_bsn",
    "subjectNatuurlijkPersoon__anpIdentificatie": "zoek_anp_identificatie",
    "subjectNatuurlijkPersoon__inpA_nummer": "zoek_inp_a_nummer",
    "subjectNietNatuurlijkPersoon__innNnpId": "zoek_inn_nnp_id",
    "subjectNietNatuurlijkPersoon__annIdentificatie": "zoek_ann_identificatie",
    "subjectVestiging__vestigingsNummer": "zoek_vestigings_nummer",
}


def underscoreize(naam: str) -> str:
    """camelCase -> snake_case the way the reference's parser does (inpBsn -> inp_bsn, inpANummer -> inp_a_nummer)."""
    return re.sub(r"([a-z]|[0-9]+[a-z]?|[A-Z]?)([A-Z0-9])", r"\1_\2", naam).lower()


FILTER_VOLGORDE = {naam: i for i, naam in enumerate(FILTERS)}
FILTER_ALIASSEN = {underscoreize(naam): naam for naam in FILTERS}
# the spec spells this one inpA_nummer; the body field is inpANummer: both reach the same filter
FILTER_ALIASSEN[underscoreize("subjectNatuurlijkPersoon__inpANummer")] = "subjectNatuurlijkPersoon__inpA_nummer"


@dataclass(frozen=True)
class Verzoek:
    """What a use case needs to know about the request and its caller."""
    base_url: str                 # scheme://host[:port][prefix], without the base path
    client_id: str = ""
    applicatie_label: str = ""
    user_id: str = ""
    user_representation: str = ""
    toelichting: str = ""
    if_match: str | None = None   # the If-Match header of a PUT, PATCH or DELETE
    logrecord_id: str = ""
    pad: str = "/api/v1/klanten"   # the request's path on the canonical base path (page links)
    query: str = ""
    verzoek_base: str = ""        # scheme://host[:port] of the request itself (base_url may be KLANTEN_BASE_URL)
    api_pad: str = "/api/v1"      # the Klanten API's canonical base path: every klant URL we write is on it

    def klant_url(self, uuid: uuid_mod.UUID) -> str:
        return f"{self.base_url}{self.api_pad}/klanten/{uuid}"


def tijdstempel(moment: dt.datetime) -> str:
    if moment.tzinfo is None:          # SQLite hands back naive UTC datetimes
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def nu() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def parse_uuid(waarde) -> uuid_mod.UUID:
    try:
        return waarde if isinstance(waarde, uuid_mod.UUID) else uuid_mod.UUID(str(waarde))
    except ValueError:
        raise NietGevonden() from None


class KlantenService:
    def __init__(self, engine: sa.Engine, schemas: v.SchemaValidatie, subjectcontrole, *, notificeren: bool):
        self.engine = engine
        self.schemas = schemas
        self.subjectcontrole = subjectcontrole
        self.notificeren = notificeren
        self.na_notificatie = lambda: None     # wakes the outbox relay after a commit that queued a message

    # ---------- representations ----------
    def weergave(self, klant_uuid: uuid_mod.UUID, g: dict, verzoek: Verzoek) -> dict:
        # one dict display (a page builds a hundred of these): the fields in the order of the reference's answer
        out = {"url": verzoek.klant_url(klant_uuid), "bronorganisatie": g["bronorganisatie"],
               "klantnummer": g["klantnummer"], "bedrijfsnaam": g["bedrijfsnaam"], "functie": g["functie"],
               "websiteUrl": g["websiteUrl"], "voornaam": g["voornaam"],
               "voorvoegselAchternaam": g["voorvoegselAchternaam"], "achternaam": g["achternaam"],
               "telefoonnummer": g["telefoonnummer"], "emailadres": g["emailadres"], "adres": g["adres"],
               "subject": g["subject"], "subjectType": g["subjectType"]}
        if g["subjectType"] is not None:
            out["subjectIdentificatie"] = g["subjectIdentificatie"]
        return out

    @staticmethod
    def audit_weergave(regel: dict) -> dict:
        out = dict(regel)
        out["uuid"] = str(regel["uuid"])
        out["aanmaakdatum"] = tijdstempel(regel["aanmaakdatum"])
        return out

    # ---------- defaults and merging, driven by the schema ----------
    def leeg(self, schema_naam: str) -> dict:
        out = {}
        for naam, prop in self.schemas.properties(schema_naam).items():
            if prop.get("readOnly"):
                continue
            soort = prop.get("type")
            out[naam] = [] if soort == "array" else "" if soort == "string" else None
        return out

    def samenvoegen(self, schema_naam: str, bestaand: dict | None, nieuw: dict) -> dict:
        """Merge validated values into a stored object: given keys replace, omitted keys stay, nested
        objects merge the same way, and an explicit null removes a nested part (DECISIONS #7)."""
        out = dict(bestaand) if bestaand is not None else self.leeg(schema_naam)
        props = self.schemas.properties(schema_naam)
        for naam, waarde in nieuw.items():
            ref = props.get(naam, {}).get("$ref")
            if ref and waarde is not None:
                out[naam] = self.samenvoegen(ref.rsplit("/", 1)[-1], out.get(naam), waarde)
            else:
                out[naam] = waarde
        return out

    # ---------- validation shared by create, PUT and PATCH ----------
    def _valideer(self, body, *, gedeeltelijk: bool, bestaand: Klant | None,
                  client_id: str = "") -> tuple[dict, dict | None, bool]:
        """Returns (top-level values, subjectIdentificatie values or None, whether subjectIdentificatie was sent).
        With a `subject` to fetch (kla-002) it must run outside any transaction and without a database
        connection: the check may take KLANTEN_SUBJECT_TIMEOUT."""
        if not isinstance(body, dict):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *v.not_a_dict(body))])
        res = self.schemas.object(body, "Klant", gedeeltelijk=gedeeltelijk)
        fouten = res.fouten
        waarde = res.waarde
        if bestaand is not None and "subjectType" in waarde and waarde["subjectType"] != bestaand.gegevens["subjectType"]:
            fouten.append(InvalidParam("subjectType", *v.IMMUTABLE))
        subject = waarde.get("subject")
        if subject and not any(f.name == "subject" for f in fouten):
            fout = self.subjectcontrole.fout(subject, client_id=client_id)     # kla-002
            if fout:
                index = next((i for i, f in enumerate(fouten) if f.name == "subjectType"), len(fouten))
                fouten.insert(index, fout)
        if fouten:
            raise ValidatieFout(fouten)

        subject_type = bestaand.gegevens["subjectType"] if bestaand is not None else waarde.get("subjectType")
        sid, sid_gegeven = None, "subjectIdentificatie" in body
        ruw = body.get("subjectIdentificatie")
        if bestaand is None and sid_gegeven and ruw is None:
            # on create there is nothing to remove: null is an error, as in the reference
            raise ValidatieFout([InvalidParam("subjectIdentificatie", *v.NULL)])
        if sid_gegeven and subject_type in SUBJECT_SCHEMAS and ruw is not None:
            if not isinstance(ruw, dict):
                raise ValidatieFout([InvalidParam("subjectIdentificatie.nonFieldErrors", *v.not_a_dict(ruw))])
            sid_res = self.schemas.object(ruw, SUBJECT_SCHEMAS[subject_type], "subjectIdentificatie.")
            if sid_res.fouten:
                raise ValidatieFout(sid_res.fouten)
            sid = sid_res.waarde
            if not sid:                       # nothing of this type's fields: as if not sent
                sid_gegeven = False
        elif sid_gegeven and subject_type not in SUBJECT_SCHEMAS:
            sid_gegeven = False               # no subjectType: there is no identification to store or remove
        return waarde, sid, sid_gegeven

    def _samengesteld(self, waarde: dict, sid: dict | None, sid_gegeven: bool, bestaand: dict | None) -> dict:
        if bestaand is None:
            g = {**self.leeg("Klant"), "adres": None, "subjectType": None, "subjectIdentificatie": None}
        else:
            g = dict(bestaand)
        for naam, w in waarde.items():
            if naam == "adres":
                g["adres"] = None if w is None else self.samenvoegen("KlantAdres", g["adres"], w)
            else:
                g[naam] = w
        if sid_gegeven:
            schema = SUBJECT_SCHEMAS[g["subjectType"]]
            g["subjectIdentificatie"] = None if sid is None else self.samenvoegen(schema, g["subjectIdentificatie"], sid)
        if g["subjectType"] is None:
            g["subjectIdentificatie"] = None
        return g

    @staticmethod
    def _regel_subject(g: dict) -> None:
        if not g["subject"] and not g["subjectIdentificatie"]:
            raise ValidatieFout([InvalidParam("nonFieldErrors", *v.INVALID_SUBJECT)])

    def _controleer_versie(self, klant: Klant, verzoek: Verzoek) -> None:
        """DECISIONS #27: with If-Match, the write goes ahead only on the version the client named: the ETag
        that klant_read serves for the klant as it is now. Inside the write transaction, on the locked row, so
        no other write can come between this check and ours."""
        if verzoek.if_match is not None and not if_match(etag_van(self.weergave(klant.uuid, klant.gegevens, verzoek)),
                                                         verzoek.if_match):
            raise VoorwaardeNietVervuld()

    @staticmethod
    def _controleer_toelichting(verzoek: Verzoek) -> None:
        """The X-Audit-Toelichting of a write that stores it, checked before anything else of the request."""
        if len(verzoek.toelichting) > TOELICHTING_MAX_LENGTE:
            raise ValidatieFout([InvalidParam("X-Audit-Toelichting", *v.max_length(TOELICHTING_MAX_LENGTE))])

    @staticmethod
    def _uniek_fout() -> ValidatieFout:
        return ValidatieFout([InvalidParam("nonFieldErrors", *v.UNIQUE)])

    # ---------- audit trail and notifications: written in the write's own unit of work ----------
    def _audit(self, klant_id: int, actie: str, resultaat: int, url: str, weergave: str, oud: dict | None,
               nieuw: dict, verzoek: Verzoek, moment: dt.datetime) -> AuditRegel:
        return AuditRegel(klant_id, {
            "uuid": uuid_mod.uuid4(), "bron": COMPONENT, "applicatieId": verzoek.client_id,
            "applicatieWeergave": verzoek.applicatie_label, "gebruikersId": verzoek.user_id,
            "gebruikersWeergave": verzoek.user_representation, "actie": actie, "actieWeergave": ACTIES[actie],
            "resultaat": resultaat, "hoofdObject": url, "resource": RESOURCE, "resourceUrl": url,
            "toelichting": verzoek.toelichting, "resourceWeergave": weergave, "aanmaakdatum": moment,
            "wijzigingen": {"oud": oud, "nieuw": nieuw},
        }, verzoek.logrecord_id)

    def _notificatie(self, klant_uuid: uuid_mod.UUID, actie: str, url: str, subject_type: str | None,
                     moment: dt.datetime) -> Bericht | None:
        """The outbox message of a write; None when no Notificaties API is configured."""
        if not self.notificeren:
            return None
        bericht = {"kanaal": KANAAL, "hoofdObject": url, "resource": RESOURCE, "resourceUrl": url, "actie": actie,
                   "aanmaakdatum": tijdstempel(moment), "kenmerken": {"subjectType": subject_type}}
        # encoded exactly as it will be sent (the reference posts with requests' json=)
        return Bericht(klant_uuid, KANAAL, json.dumps(bericht, allow_nan=False), moment,
                       tracing.traceparent())

    @staticmethod
    def _resource_weergave(g: dict) -> str:
        return f"{g['bronorganisatie']} - {g['klantnummer']}"

    def gegevens_voor_import(self, body) -> dict:
        """DECISIONS #28 (`klanten-api import`): the klant a create body would store, validated as klant_create
        validates (kla-002 through this service's subject check, which an import passes as it chooses), but
        without kla-001 (the body brings its klantnummer) and without a uniqueness check (the importer checks
        against the register)."""
        waarde, sid, sid_gegeven = self._valideer(body, gedeeltelijk=False, bestaand=None)
        g = self._samengesteld(waarde, sid, sid_gegeven, None)
        self._regel_subject(g)
        return g

    # ---------- operations ----------
    def klant_create(self, body, verzoek: Verzoek) -> dict:
        self._controleer_toelichting(verzoek)
        waarde, sid, sid_gegeven = self._valideer(body, gedeeltelijk=False, bestaand=None,
                                                  client_id=verzoek.client_id)
        g = self._samengesteld(waarde, sid, sid_gegeven, None)
        gegenereerd = not g["klantnummer"]
        for _ in range(GENEREER_POGINGEN):
            try:
                with UnitOfWork(self.engine, schrijven=True) as uow:
                    if gegenereerd:
                        self._regel_subject(g)     # (a generated number raises no uniqueness question)
                    else:
                        if uow.klanten.klantnummer_bestaat(g["bronorganisatie"], g["klantnummer"]):
                            raise self._uniek_fout()
                        self._regel_subject(g)      # after uniqueness, as the reference orders them
                    moment = nu()
                    klant_uuid = uuid_mod.uuid4()
                    # kla-001: without a klantnummer from the client, the next free one of its bronorganisatie
                    klant_id, g["klantnummer"] = uow.klanten.toevoegen(klant_uuid, g, moment,
                                                                       klantnummer_genereren=gegenereerd)
                    weergave = self.weergave(klant_uuid, g, verzoek)
                    url = weergave["url"]
                    uow.vastleggen(
                        audit=self._audit(klant_id, "create", 201, url, self._resource_weergave(g), None, weergave,
                                          verzoek, moment),
                        bericht=self._notificatie(klant_uuid, "create", url, g["subjectType"], moment))
                    uow.commit()
                self.na_notificatie()
                return weergave
            except sa.exc.IntegrityError as exc:
                # kla-001: the database constraint decides when two requests race
                if not is_unique_violation(exc, "uq_klant_bronorganisatie_klantnummer",
                                           ("bronorganisatie", "klantnummer")):
                    raise
                if not gegenereerd:
                    raise self._uniek_fout() from None
            except KlantnummersUitgeput:
                raise ValidatieFout([InvalidParam("klantnummer", "required", v.REQUIRED[1])]) from None
        raise self._uniek_fout()

    def klant_read(self, uuid, verzoek: Verzoek) -> dict:
        klant_uuid = parse_uuid(uuid)
        with UnitOfWork(self.engine) as uow:
            klant = uow.klanten.get(klant_uuid)
        if klant is None:
            raise NietGevonden()
        return self.weergave(klant.uuid, klant.gegevens, verzoek)

    def klant_list(self, verzoek: Verzoek) -> dict:
        """Filters are matched by their underscoreized names, as the reference does, so the spec's names and
        their snake_case forms both work (subjectType / subject_type); unknown parameters are ignored; a
        repeated parameter counts with its last value; an empty value means no filter."""
        kolommen, fouten, page = {}, [], None
        for naam, waarde in parse_qsl(verzoek.query, keep_blank_values=True):
            if naam == "page":
                page = waarde
                continue
            naam = FILTER_ALIASSEN.get(underscoreize(naam))
            if naam is None:
                continue
            kolommen.pop(FILTERS[naam], None)
            fouten = [f for f in fouten if f.name != naam]
            if waarde == "":
                continue
            if naam == "bronorganisatie" and (fout := elfproef_fout(waarde)):
                fouten.append(InvalidParam(naam, *fout))
            elif naam == "subject" and not v.is_url(waarde):
                fouten.append(InvalidParam(naam, *v.INVALID_URL))
            elif naam == "subjectType" and waarde not in SUBJECT_TYPES:
                fouten.append(InvalidParam(naam, *v.filter_invalid_choice(waarde)))
            kolommen[FILTERS[naam]] = waarde
        if fouten:
            raise ValidatieFout(sorted(fouten, key=lambda f: FILTER_VOLGORDE[f.name]))   # the spec's order
        if any("\x00" in w for w in kolommen.values()):
            kolommen = None        # no stored value holds a NUL character (they are refused on input): no match
        with UnitOfWork(self.engine) as uow:
            if page == "last":
                count, _ = uow.klanten.zoeken(kolommen, 0, 0)
                pagina = max(1, -(-count // PAGINAGROOTTE))
            elif page in (None, ""):
                pagina = 1
            elif page.isdigit() and int(page) >= 1:
                pagina = int(page)
            else:
                raise NietGevonden(ONGELDIGE_PAGINA)
            count, klanten = uow.klanten.zoeken(kolommen, (pagina - 1) * PAGINAGROOTTE, PAGINAGROOTTE)
        if pagina > 1 and not klanten:
            raise NietGevonden(ONGELDIGE_PAGINA)
        laatste = max(1, -(-count // PAGINAGROOTTE))
        return {
            "count": count,
            "next": self._pagina_url(verzoek, pagina + 1) if pagina < laatste else None,
            "previous": self._pagina_url(verzoek, pagina - 1) if pagina > 1 else None,
            "results": [self.weergave(k.uuid, k.gegevens, verzoek) for k in klanten],
        }

    @staticmethod
    def _pagina_url(verzoek: Verzoek, pagina: int) -> str:
        """The request's own URL with `page` replaced (added at the end when absent); page 1 drops it."""
        paren = parse_qsl(verzoek.query, keep_blank_values=True)
        nieuw, gezet = [], False
        for k, w in paren:
            if k == "page":
                if not gezet and pagina > 1:
                    nieuw.append(("page", str(pagina)))
                gezet = True
            else:
                nieuw.append((k, w))
        if not gezet and pagina > 1:
            nieuw.append(("page", str(pagina)))
        query = urlencode(nieuw)
        return f"{verzoek.base_url}{verzoek.pad}" + (f"?{query}" if query else "")

    def klant_update(self, uuid, body, verzoek: Verzoek, *, gedeeltelijk: bool) -> dict:
        klant_uuid = parse_uuid(uuid)
        self._controleer_toelichting(verzoek)
        vooraf = None
        if isinstance(body, dict) and isinstance(body.get("subject"), str) and body["subject"]:
            # kla-002 makes an HTTP call (for any non-empty string, the only input it fetches): validate before
            # the write transaction and without a database connection, never while holding its lock
            with UnitOfWork(self.engine) as uow:
                bestaand = uow.klanten.get(klant_uuid)
            if bestaand is None:
                raise NietGevonden()
            self._controleer_versie(bestaand, verzoek)     # early, to spare the subject fetch; checked again below
            vooraf = self._valideer(body, gedeeltelijk=gedeeltelijk, bestaand=bestaand,
                                    client_id=verzoek.client_id)
        actie = "partial_update" if gedeeltelijk else "update"
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                huidig = uow.klanten.get(klant_uuid, for_update=True)
                if huidig is None:             # unknown, or deleted while we validated
                    raise NietGevonden()
                self._controleer_versie(huidig, verzoek)
                # without a subject to fetch, validation needs no network: do it here, in one transaction
                waarde, sid, sid_gegeven = vooraf or self._valideer(body, gedeeltelijk=gedeeltelijk, bestaand=huidig)
                g = self._samengesteld(waarde, sid, sid_gegeven, huidig.gegevens)
                if (g["bronorganisatie"], g["klantnummer"]) != (huidig.gegevens["bronorganisatie"],
                                                                huidig.gegevens["klantnummer"]) \
                        and uow.klanten.klantnummer_bestaat(g["bronorganisatie"], g["klantnummer"],
                                                            behalve_id=huidig.id):
                    raise self._uniek_fout()
                self._regel_subject(g)
                uow.klanten.bijwerken(huidig.id, g)
                oud = self.weergave(klant_uuid, huidig.gegevens, verzoek)
                nieuw = self.weergave(klant_uuid, g, verzoek)
                moment = nu()
                uow.vastleggen(
                    audit=self._audit(huidig.id, actie, 200, nieuw["url"], self._resource_weergave(huidig.gegevens),
                                      oud, nieuw, verzoek, moment),
                    bericht=self._notificatie(klant_uuid, actie, nieuw["url"], g["subjectType"], moment))
                uow.commit()
                self.na_notificatie()
                return nieuw
        except sa.exc.IntegrityError as exc:
            if is_unique_violation(exc, "uq_klant_bronorganisatie_klantnummer", ("bronorganisatie", "klantnummer")):
                raise self._uniek_fout() from None
            raise

    def klant_delete(self, uuid, verzoek: Verzoek) -> None:
        klant_uuid = parse_uuid(uuid)
        with UnitOfWork(self.engine, schrijven=True) as uow:
            klant = uow.klanten.get(klant_uuid, for_update=True)
            if klant is None:
                raise NietGevonden()
            self._controleer_versie(klant, verzoek)
            url = verzoek.klant_url(klant_uuid)
            uow.audittrail.verwijder_van_klant(klant.id)
            uow.klanten.verwijderen(klant.id)
            uow.vastleggen(audit=None,
                           bericht=self._notificatie(klant_uuid, "destroy", url, klant.gegevens["subjectType"], nu()))
            uow.commit()
        self.na_notificatie()

    def audittrail_list(self, klant_uuid, verzoek: Verzoek) -> list[dict]:
        with UnitOfWork(self.engine) as uow:
            klant_id = uow.klanten.id_van(parse_uuid(klant_uuid))
            if klant_id is None:
                raise NietGevonden()
            return [self.audit_weergave(r) for r in uow.audittrail.van_klant(klant_id)]

    def audittrail_read(self, klant_uuid, uuid, verzoek: Verzoek) -> dict:
        with UnitOfWork(self.engine) as uow:
            klant_id = uow.klanten.id_van(parse_uuid(klant_uuid))
            regel = uow.audittrail.get(klant_id, parse_uuid(uuid)) if klant_id is not None else None
        if regel is None:
            raise NietGevonden()
        return self.audit_weergave(regel)
