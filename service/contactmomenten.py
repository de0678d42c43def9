"""The use cases of the Contactmomenten API 1.0: one function per operation, the rules in one place.

Rules by name (the standard's, plus the reference's `invalid-medewerker`):
- cm-001: vorigContactmoment is one of our contactmomenten, resolved from the URL's path (the host is ignored,
  a bare path is accepted), and the predecessor of at most one other.
- cm-002: volgendContactmoment is the reverse of that link (derived, never stored twice).
- cm-003: medewerker is not fetched (DECISIONS #22); invalid-medewerker: medewerker or medewerkerIdentificatie.
- cm-004: klantcontactmoment: contactmoment local; klant of this server looked up in our own database, a foreign
  klant fetched with credentials (service.diensten); (contactmoment, klant, rol) unique.
- cm-005: objectcontactmoment: the zaak fetched and its shape checked; (contactmoment, object) unique.
- cm-006: the Zaken API must hold the mirror relation (on create) and no longer hold it (on delete).

A contactmoment write does everything in one unit of work: the contactmoment, its audit row and its outbox
message commit together or not at all. A relation write that fetches (cm-004 foreign, cm-005, cm-006) does so
before its transaction and without a database connection.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid as uuid_mod
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa

from klanten_api.errors import ApiProblem, InvalidParam, NietGevonden, ValidatieFout, VoorwaardeNietVervuld
from klanten_api import tracing
from klanten_api.etag import etag_van, if_match
from storage.contactmomenten import SORTERINGEN, Contactmoment
from storage.uow import Bericht, ContactmomentAuditRegel, UnitOfWork, is_unique_violation
from . import validatie as v
from .constants import ACTIES, CM_COMPONENT, CM_KANAAL, CM_RESOURCE, TOELICHTING_MAX_LENGTE
from .elfproef import elfproef_fout
from .klanten import ONGELDIGE_PAGINA, PAGINAGROOTTE, KlantenService, Verzoek, nu, parse_uuid, tijdstempel

# the reference's messages (contactmomenten-reference-behaviour.md, appendix A)
NO_MATCH = ("no_match", "Ongeldige hyperlink - Geen overeenkomende URL.")
INCORRECT_MATCH = ("incorrect_match", "Ongeldige hyperlink - Ongeldige URL")
DOES_NOT_EXIST = ("does_not_exist", "Ongeldige hyperlink - Object bestaat niet.")
UNIQUE_VELD = ("unique", "Dit veld moet uniek zijn.")
INVALID_MEDEWERKER = ("invalid-medewerker", "medewerker or medewerkerIdentificatie must be provided")
UNIQUE_KLANTCONTACTMOMENT = ("unique", "De velden contactmoment, klant, rol moeten een unieke set zijn.")
UNIQUE_OBJECTCONTACTMOMENT = ("unique", "De velden contactmoment, object moeten een unieke set zijn.")
DATUM_BODY = ("invalid", "Datetime heeft een ongeldig formaat, gebruik 1 van de volgende formaten: "
                         "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
DATUM_QUERY = ("invalid", "Voer een geldige datum/tijd in.")
RESOURCE_WEERGAVE_MAX = 200        # the audit trail's resourceWeergave (the reference 500s beyond it; we cut)


def ongeldige_uuid(tekst: str) -> tuple[str, str]:
    return "invalid", f"'{tekst}' is geen geldige UUID."


def incorrect_type(waarde) -> tuple[str, str]:
    return "incorrect_type", f"Ongeldig type. Verwacht een URL, ontving {v._typename(waarde)}."


def onbekende_parameters(namen: list[str]) -> InvalidParam:
    return InvalidParam("nonFieldErrors", "unknown-parameters", "Onbekende query parameters: " + ", ".join(namen))


class VolgendContactmomentBestaat(ApiProblem):
    """DECISIONS #20: a contactmoment that a later one names as vorigContactmoment is not deleted (the reference
    answers 500). 409, which the contract documents for contactmoment_delete; nothing is written."""
    status = 409

    def __init__(self):
        super().__init__("Dit contactmoment is het vorigContactmoment van een ander contactmoment (zie "
                         "volgendContactmoment). Verwijder eerst dat contactmoment, of maak zijn "
                         "vorigContactmoment leeg.", code="volgend-contactmoment-bestaat")


# ---------- our own routes (cm-001, cm-004: a URL is resolved from its path, as the reference's router does) ----------
# the part of a path after its API's base path; every base path of an API counts (klanten_api.apis.Layout)
_DETAIL = re.compile(r"^/(contactmomenten|klantcontactmomenten|objectcontactmomenten)/([^/.]+)$")
_KLANT = re.compile(r"^/klanten/([^/.]+)$")
_ANDERE_ROUTES = {
    "contactmomenten": (
        re.compile(r"^/?$"),
        re.compile(r"^/(contactmomenten|klantcontactmomenten|objectcontactmomenten)$"),
        re.compile(r"^/contactmomenten/[^/.]+/audittrail(/[^/.]+)?$"),
    ),
    "klanten": (
        re.compile(r"^/?$"),
        re.compile(r"^/klanten(/[^/.]+(/audittrail(/[^/.]+)?)?)?$"),
    ),
}

# Django's parse_datetime: `T` or a space, seconds and fraction optional, Z / an offset / nothing (= UTC)
_DATUMTIJD = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})[T ](?P<hour>\d{1,2}):(?P<minute>\d{1,2})"
    r"(?::(?P<second>\d{1,2})(?:[.,](?P<microsecond>\d{1,6})\d{0,6})?)?\s*(?P<tzinfo>Z|[+-]\d{2}(?::?\d{2})?)?\Z")


def lees_datumtijd(tekst: str) -> dt.datetime | None:
    """An ISO 8601 date-time as the reference reads it (naive means UTC); None when it is not one."""
    m = _DATUMTIJD.match(tekst.strip())
    if not m:
        return None
    d = m.groupdict()
    tz = d.pop("tzinfo")
    fractie = (d.pop("microsecond") or "").ljust(6, "0")
    try:
        zone = dt.timezone.utc
        if tz and tz != "Z":
            minuten = int(tz[1:3]) * 60 + (int(tz[-2:]) if len(tz) > 3 else 0)
            zone = dt.timezone(dt.timedelta(minutes=-minuten if tz[0] == "-" else minuten))
        return dt.datetime(**{k: int(w or 0) for k, w in d.items()}, microsecond=int(fractie or 0),
                           tzinfo=zone).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        return None


def _python_str(moment: dt.datetime) -> str:
    """str() of an aware UTC datetime, as the reference's audit text shows registratiedatum."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return str(moment.astimezone(dt.timezone.utc))


class Hyperlinkfout(Exception):
    def __init__(self, code_reden: tuple[str, str]):
        self.code_reden = code_reden


# contactmoment filters, in the spec's order (errors are reported in this order)
CM_FILTERS = ("vorigContactmoment", "volgendContactmoment", "bronorganisatie", "registratiedatum",
              "registratiedatum__gt", "registratiedatum__gte", "registratiedatum__lt", "registratiedatum__lte",
              "kanaal", "voorkeurskanaal", "voorkeurstaal", "initiatiefnemer", "medewerker", "ordering")
KCM_FILTERS = ("contactmoment", "klant", "rol")
OCM_FILTERS = ("object", "contactmoment", "objectType")
INITIATIEFNEMERS = ("gemeente", "klant")
ROLLEN = ("belanghebbende", "gesprekspartner")
OBJECT_TYPES = ("zaak",)
CM_VELDEN = ("vorigContactmoment", "bronorganisatie", "registratiedatum", "kanaal", "voorkeurskanaal",
             "voorkeurstaal", "tekst", "onderwerpLinks", "initiatiefnemer", "medewerker", "medewerkerIdentificatie")


class ContactmomentenService:
    def __init__(self, engine: sa.Engine, schemas: v.SchemaValidatie, diensten, layout, *, notificeren: bool,
                 zaak_relatie_controle: bool = True):
        self.engine = engine
        # klanten_api.apis.Layout: the canonical base of our URLs, and which paths are ours (cm-001, cm-004)
        self.layout = layout
        self.schemas = schemas
        self.diensten = diensten              # service.diensten.Diensten: fetches of other APIs (cm-004, 5, 6)
        self.notificeren = notificeren
        self.zaak_relatie_controle = zaak_relatie_controle
        self.na_notificatie = lambda: None

    # ---------- URLs and representations ----------
    def url(self, verzoek: Verzoek, resource: str, uuid) -> str:
        """Every contactmoment URL we write is on the canonical base path (KLANTEN_CONTACTMOMENTEN_BASE_PATH)."""
        return f"{verzoek.base_url}{self.layout.api('contactmomenten').canonical}/{resource}/{uuid}"

    def weergave(self, cm: Contactmoment | None, verzoek: Verzoek, *, uuid=None, gegevens=None, vorig_uuid=None,
                 volgend_uuid=None) -> dict:
        if cm is not None:
            uuid, gegevens, vorig_uuid, volgend_uuid = cm.uuid, cm.gegevens, cm.vorig_uuid, cm.volgend_uuid
        out = {
            "url": self.url(verzoek, "contactmomenten", uuid),
            "vorigContactmoment": self.url(verzoek, "contactmomenten", vorig_uuid) if vorig_uuid else None,
            "volgendContactmoment": self.url(verzoek, "contactmomenten", volgend_uuid) if volgend_uuid else None,
        }
        for naam in CM_VELDEN[1:]:
            out[naam] = gegevens[naam]
        out["registratiedatum"] = tijdstempel(gegevens["registratiedatum"])
        out["onderwerpLinks"] = list(gegevens["onderwerpLinks"] or [])
        if gegevens["medewerkerIdentificatie"] is not None:
            out["medewerkerIdentificatie"] = dict(gegevens["medewerkerIdentificatie"])
        return out

    def relatie_weergave(self, resource: str, relatie, verzoek: Verzoek) -> dict:
        return {"url": self.url(verzoek, resource, relatie.uuid),
                "contactmoment": self.url(verzoek, "contactmomenten", relatie.contactmoment_uuid),
                **relatie.gegevens}

    # ---------- cm-001 / cm-004: our own hyperlinks ----------
    @staticmethod
    def _pad(waarde: str, verzoek: Verzoek) -> str | None:
        """The path of a URL (or of a bare path) without the canonical base's own prefix."""
        try:
            pad = urlsplit(waarde).path
        except ValueError:
            return None
        prefix = urlsplit(verzoek.base_url).path.rstrip("/")
        if prefix and pad.startswith(prefix + "/"):
            pad = pad[len(prefix):]
        return pad

    def _route(self, pad: str | None) -> tuple[str, str] | None:
        """(API name, the rest after its base path) of a path of ours, on any of that API's base paths."""
        gevonden = self.layout.serving(pad) if pad is not None else None
        if gevonden is None:
            return None
        mounted, base = gevonden
        return mounted.naam, pad[len(base):]

    def _hyperlink(self, waarde, uow: UnitOfWork, verzoek: Verzoek) -> Contactmoment:
        """cm-001: the contactmoment a URL names, resolved from its path (host ignored); raises Hyperlinkfout with
        the reference's code."""
        if not isinstance(waarde, str):
            raise Hyperlinkfout(incorrect_type(waarde))      # (a number: the reference answers 500)
        if len(waarde) > 1000:
            raise Hyperlinkfout(v.max_length(1000))
        naam, rest = self._route(self._pad(waarde.strip(), verzoek)) or (None, "")
        m = _DETAIL.match(rest) if naam == "contactmomenten" else None
        if not m:
            if any(r.match(rest) for r in _ANDERE_ROUTES.get(naam, ())):
                raise Hyperlinkfout(INCORRECT_MATCH)
            raise Hyperlinkfout(NO_MATCH)
        if m.group(1) != "contactmomenten":
            raise Hyperlinkfout(INCORRECT_MATCH)
        try:
            cm_uuid = uuid_mod.UUID(m.group(2))
        except ValueError:
            raise Hyperlinkfout(ongeldige_uuid(m.group(2))) from None
        cm = uow.contactmomenten.get(cm_uuid)
        if cm is None:
            raise Hyperlinkfout(DOES_NOT_EXIST)
        return cm

    def _eigen_oorsprong(self, url: str, verzoek: Verzoek) -> bool:
        """Whether a URL's scheme://host[:port] is this server's (KLANTEN_BASE_URL or the request's own)."""
        try:
            delen = urlsplit(url)
            oorsprong = f"{delen.scheme}://{delen.netloc}".lower()
        except ValueError:
            return False
        eigen = set()
        for base in (verzoek.base_url, verzoek.verzoek_base):
            if base:
                b = urlsplit(base)
                eigen.add(f"{b.scheme}://{b.netloc}".lower())
        return oorsprong in eigen

    # ---------- field validation ----------
    def _als_tekst(self, body: dict, schema_naam: str, behalve: tuple[str, ...] = ()) -> dict:
        """A number where a string belongs is read as a string (as the reference does: "tekst": 12 -> "12")."""
        out = dict(body)
        for naam, prop in self.schemas.properties(schema_naam).items():
            w = out.get(naam)
            if naam in behalve:
                continue
            if prop.get("type") == "string" and isinstance(w, (int, float)) and not isinstance(w, bool):
                out[naam] = str(w)
            elif "$ref" in prop and isinstance(w, dict):
                out[naam] = self._als_tekst(w, prop["$ref"].rsplit("/", 1)[-1])
        return out

    @staticmethod
    def _op_veldvolgorde(fouten: list[InvalidParam], volgorde: tuple[str, ...]) -> list[InvalidParam]:
        index = {naam: i for i, naam in enumerate(volgorde)}
        return sorted(fouten, key=lambda f: index.get(f.name.split(".", 1)[0], len(index)))

    def _valideer(self, body, bestaand: Contactmoment | None, uow: UnitOfWork, verzoek: Verzoek, *,
                  gedeeltelijk: bool) -> tuple[dict, bool, Contactmoment | None]:
        """(valid values, whether vorigContactmoment was given, the vorig contactmoment)."""
        if not isinstance(body, dict):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *v.not_a_dict(body))])
        body = self._als_tekst(body, "ContactMoment", behalve=("vorigContactmoment",))
        res = self.schemas.object(body, "ContactMoment", gedeeltelijk=gedeeltelijk,
                                  overslaan=("vorigContactmoment", "registratiedatum"))
        fouten, waarde = list(res.fouten), dict(res.waarde)
        vorig, vorig_gegeven = None, "vorigContactmoment" in body
        if vorig_gegeven and body["vorigContactmoment"] not in (None, ""):
            try:
                vorig = self._hyperlink(body["vorigContactmoment"], uow, verzoek)
                if uow.contactmomenten.vorig_van_ander(vorig.id, behalve_id=bestaand.id if bestaand else None):
                    fouten.append(InvalidParam("vorigContactmoment", *UNIQUE_VELD))
            except Hyperlinkfout as fout:
                fouten.append(InvalidParam("vorigContactmoment", *fout.code_reden))
        if "registratiedatum" in body:
            ruw = body["registratiedatum"]
            moment = lees_datumtijd(ruw) if isinstance(ruw, str) else None
            if ruw is None:
                fouten.append(InvalidParam("registratiedatum", *v.NULL))
            elif moment is None:
                fouten.append(InvalidParam("registratiedatum", *DATUM_BODY))
            else:
                waarde["registratiedatum"] = moment
        if fouten:
            raise ValidatieFout(self._op_veldvolgorde(fouten, CM_VELDEN))
        # invalid-medewerker, only once every field is valid; on an update the stored values count (as the
        # reference: `new or stored` for each of the two)
        opgeslagen = bestaand.gegevens if bestaand is not None else {}
        if not ((waarde.get("medewerker") or opgeslagen.get("medewerker"))
                or (waarde.get("medewerkerIdentificatie") or opgeslagen.get("medewerkerIdentificatie"))):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *INVALID_MEDEWERKER)])
        return waarde, vorig_gegeven, vorig

    @staticmethod
    def _samengesteld(waarde: dict, bestaand: dict | None, moment: dt.datetime) -> dict:
        """Merge: given fields replace, omitted ones stay; medewerkerIdentificatie merges, and null or {} there
        changes nothing (as the reference: the group cannot be removed)."""
        g = dict(bestaand) if bestaand is not None else {
            "registratiedatum": moment, "kanaal": "", "voorkeurskanaal": "", "voorkeurstaal": "", "tekst": "",
            "onderwerpLinks": [], "initiatiefnemer": "", "medewerker": "", "medewerkerIdentificatie": None}
        for naam, w in waarde.items():
            if naam == "medewerkerIdentificatie":
                if w:
                    leeg = {"identificatie": "", "achternaam": "", "voorletters": "", "voorvoegselAchternaam": ""}
                    g[naam] = {**(g[naam] or leeg), **w}
            else:
                g[naam] = w
        return g

    @staticmethod
    def _controleer_toelichting(verzoek: Verzoek) -> None:
        if len(verzoek.toelichting) > TOELICHTING_MAX_LENGTE:
            raise ValidatieFout([InvalidParam("X-Audit-Toelichting", *v.max_length(TOELICHTING_MAX_LENGTE))])

    def _controleer_versie(self, cm: Contactmoment, verzoek: Verzoek) -> None:
        """DECISIONS #27 as for klanten: If-Match against the ETag contactmoment_read serves, on the locked row."""
        if verzoek.if_match is not None and not if_match(etag_van(self.weergave(cm, verzoek)), verzoek.if_match):
            raise VoorwaardeNietVervuld("contactmoment")

    # ---------- audit trail and notifications ----------
    @staticmethod
    def _resource_weergave(g: dict) -> str:
        laatste = (g["medewerker"] or "").split("/")[-1]
        tekst = f"{g['bronorganisatie']} {laatste} at {_python_str(g['registratiedatum'])} via {g['kanaal']}"
        return tekst[:RESOURCE_WEERGAVE_MAX]

    def _audit(self, cm_id: int, actie: str, resultaat: int, url: str, weergave: str, oud, nieuw: dict,
               verzoek: Verzoek, moment: dt.datetime) -> ContactmomentAuditRegel:
        return ContactmomentAuditRegel(cm_id, {
            "uuid": uuid_mod.uuid4(), "bron": CM_COMPONENT, "applicatieId": verzoek.client_id,
            "applicatieWeergave": verzoek.applicatie_label, "gebruikersId": verzoek.user_id,
            "gebruikersWeergave": verzoek.user_representation, "actie": actie, "actieWeergave": ACTIES[actie],
            "resultaat": resultaat, "hoofdObject": url, "resource": CM_RESOURCE, "resourceUrl": url,
            "toelichting": verzoek.toelichting, "resourceWeergave": weergave, "aanmaakdatum": moment,
            "wijzigingen": {"oud": oud, "nieuw": nieuw},
        }, verzoek.logrecord_id)

    def _notificatie(self, cm_uuid: uuid_mod.UUID, actie: str, url: str, g: dict, moment: dt.datetime):
        if not self.notificeren:
            return None
        bericht = {"kanaal": CM_KANAAL, "hoofdObject": url, "resource": CM_RESOURCE, "resourceUrl": url,
                   "actie": actie, "aanmaakdatum": tijdstempel(moment),
                   "kenmerken": {"bronorganisatie": g["bronorganisatie"], "kanaal": g["kanaal"]}}
        # the outbox orders messages per object: its klant_uuid column holds the contactmoment's uuid
        return Bericht(cm_uuid, CM_KANAAL, json.dumps(bericht, allow_nan=False), moment,
                       tracing.traceparent())

    @staticmethod
    def _integriteit(exc: sa.exc.IntegrityError) -> ValidatieFout:
        """A constraint that decided between racing writes of vorigContactmoment (cm-001)."""
        if is_unique_violation(exc, "uq_contactmoment_vorig_contactmoment_id", ("vorig_contactmoment_id",)):
            return ValidatieFout([InvalidParam("vorigContactmoment", *UNIQUE_VELD)])
        if "foreign key" in str(exc.orig).lower() or getattr(exc.orig, "sqlstate", None) == "23503":
            return ValidatieFout([InvalidParam("vorigContactmoment", *DOES_NOT_EXIST)])
        raise exc

    # ---------- contactmoment ----------
    def contactmoment_create(self, body, verzoek: Verzoek) -> dict:
        self._controleer_toelichting(verzoek)
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                waarde, _, vorig = self._valideer(body, None, uow, verzoek, gedeeltelijk=False)
                moment = nu()
                g = self._samengesteld(waarde, None, moment)
                cm_uuid = uuid_mod.uuid4()
                cm_id = uow.contactmomenten.toevoegen(cm_uuid, g, vorig.id if vorig else None, moment)
                nieuw = self.weergave(None, verzoek, uuid=cm_uuid, gegevens=g,
                                      vorig_uuid=vorig.uuid if vorig else None)
                uow.vastleggen(
                    audit=self._audit(cm_id, "create", 201, nieuw["url"], self._resource_weergave(g), None, nieuw,
                                      verzoek, moment),
                    bericht=self._notificatie(cm_uuid, "create", nieuw["url"], g, moment))
                uow.commit()
        except sa.exc.IntegrityError as exc:
            raise self._integriteit(exc) from None
        self.na_notificatie()
        return nieuw

    def contactmoment_read(self, uuid, verzoek: Verzoek) -> dict:
        with UnitOfWork(self.engine) as uow:
            cm = uow.contactmomenten.get(parse_uuid(uuid))
        if cm is None:
            raise NietGevonden()
        return self.weergave(cm, verzoek)

    def contactmoment_update(self, uuid, body, verzoek: Verzoek, *, gedeeltelijk: bool) -> dict:
        cm_uuid = parse_uuid(uuid)
        self._controleer_toelichting(verzoek)
        actie = "partial_update" if gedeeltelijk else "update"
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                huidig = uow.contactmomenten.get(cm_uuid, for_update=True)
                if huidig is None:
                    raise NietGevonden()
                self._controleer_versie(huidig, verzoek)
                waarde, vorig_gegeven, vorig = self._valideer(body, huidig, uow, verzoek, gedeeltelijk=gedeeltelijk)
                moment = nu()
                g = self._samengesteld(waarde, huidig.gegevens, moment)
                if vorig_gegeven:
                    vorig_id, vorig_uuid = (vorig.id, vorig.uuid) if vorig else (None, None)
                else:
                    vorig_id, vorig_uuid = huidig.vorig_id, huidig.vorig_uuid
                uow.contactmomenten.bijwerken(huidig.id, g, vorig_id)
                oud = self.weergave(huidig, verzoek)
                # cm-002: a contactmoment that names itself is its own volgendContactmoment
                volgend_uuid = cm_uuid if vorig_uuid == cm_uuid else (
                    None if huidig.volgend_uuid == cm_uuid else huidig.volgend_uuid)
                nieuw = self.weergave(None, verzoek, uuid=cm_uuid, gegevens=g, vorig_uuid=vorig_uuid,
                                      volgend_uuid=volgend_uuid)
                uow.vastleggen(
                    audit=self._audit(huidig.id, actie, 200, nieuw["url"], self._resource_weergave(huidig.gegevens),
                                      oud, nieuw, verzoek, moment),
                    bericht=self._notificatie(cm_uuid, actie, nieuw["url"], g, moment))
                uow.commit()
        except sa.exc.IntegrityError as exc:
            raise self._integriteit(exc) from None
        self.na_notificatie()
        return nieuw

    def contactmoment_delete(self, uuid, verzoek: Verzoek) -> None:
        cm_uuid = parse_uuid(uuid)
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                cm = uow.contactmomenten.get(cm_uuid, for_update=True)
                if cm is None:
                    raise NietGevonden()
                self._controleer_versie(cm, verzoek)
                if uow.contactmomenten.vorig_van_ander(cm.id, behalve_id=cm.id):
                    raise VolgendContactmomentBestaat()
                url = self.url(verzoek, "contactmomenten", cm_uuid)
                # its audit rows, klantcontactmomenten and objectcontactmomenten go with it (as the reference)
                uow.cm_audittrail.verwijder_van(cm.id)
                uow.contactmomenten.verwijderen(cm.id)
                uow.vastleggen(audit=None, bericht=self._notificatie(cm_uuid, "destroy", url, cm.gegevens, nu()))
                uow.commit()
        except sa.exc.IntegrityError:
            # a later contactmoment started naming this one while we deleted it: the key refused the delete
            raise VolgendContactmomentBestaat() from None
        self.na_notificatie()

    def contactmoment_list(self, verzoek: Verzoek) -> dict:
        waarden, page = self._query(verzoek, CM_FILTERS)
        fouten, filters, sortering, geen = [], {}, [], False
        for naam in CM_FILTERS:
            w = waarden.get(naam, "")
            if w == "":
                continue
            if naam in ("vorigContactmoment", "volgendContactmoment"):
                if not v.is_url(w):
                    fouten.append(InvalidParam(naam, *v.INVALID_URL))
                    continue
                gevonden = self._lokaal_contactmoment_uuid(w, verzoek)
                if gevonden is None:
                    geen = True            # another host, another resource or no such uuid: nothing matches
                else:
                    filters[naam] = gevonden
            elif naam == "bronorganisatie":
                if fout := elfproef_fout(w):
                    fouten.append(InvalidParam(naam, *fout))
                else:
                    filters[naam] = w
            elif naam.startswith("registratiedatum"):
                moment = lees_datumtijd(w)
                if moment is None:
                    fouten.append(InvalidParam(naam, *DATUM_QUERY))
                else:
                    filters[naam] = moment
            elif naam == "initiatiefnemer":
                if w not in INITIATIEFNEMERS:
                    fouten.append(InvalidParam(naam, *v.filter_invalid_choice(w)))
                else:
                    filters[naam] = w
            elif naam == "medewerker":
                if not v.is_url(w):
                    fouten.append(InvalidParam(naam, *v.INVALID_URL))
                else:
                    filters[naam] = w
            elif naam == "ordering":
                for deel in (d.strip() for d in w.split(",")):
                    if not deel:
                        continue
                    if deel.removeprefix("-") not in SORTERINGEN:
                        fouten.append(InvalidParam(naam, *v.filter_invalid_choice(deel)))
                        break
                    sortering.append((deel.removeprefix("-"), deel.startswith("-")))
            else:
                filters[naam] = w
        if fouten:
            raise ValidatieFout(fouten)
        if geen or any("\x00" in str(w) for w in filters.values()):
            filters = None             # (no stored value holds a NUL character)
        return self._pagina(verzoek, page, lambda uow, offset, limit: uow.contactmomenten.zoeken(
            filters, sortering, offset, limit), lambda cm: self.weergave(cm, verzoek))

    def _lokaal_contactmoment_uuid(self, url: str, verzoek: Verzoek) -> uuid_mod.UUID | None:
        """A filter URL names one of our contactmomenten only on our own host (as the reference)."""
        if not self._eigen_oorsprong(url, verzoek):
            return None
        naam, rest = self._route(self._pad(url, verzoek)) or (None, "")
        m = _DETAIL.match(rest) if naam == "contactmomenten" else None
        if not m or m.group(1) != "contactmomenten":
            return None
        try:
            return uuid_mod.UUID(m.group(2))
        except ValueError:
            return None

    # ---------- lists: parameters and pages ----------
    @staticmethod
    def _query(verzoek: Verzoek, bekend: tuple[str, ...]) -> tuple[dict, str | None]:
        """DECISIONS #25: an unknown parameter is 400 (names in the order sent). A repeated parameter counts with
        its last value; an empty value is no filter."""
        paren = parse_qsl(verzoek.query, keep_blank_values=True)
        onbekend = [n for n in dict.fromkeys(k for k, _ in paren) if n not in bekend and n != "page"]
        if onbekend:
            raise ValidatieFout([onbekende_parameters(onbekend)])
        waarden = {}
        for k, w in paren:
            waarden[k] = w
        return waarden, waarden.pop("page", None)

    def _pagina(self, verzoek: Verzoek, page: str | None, zoek, weergave) -> dict:
        with UnitOfWork(self.engine) as uow:
            if page == "last":
                count, _ = zoek(uow, 0, 0)
                pagina = max(1, -(-count // PAGINAGROOTTE))
            elif page in (None, ""):
                pagina = 1
            elif page.isdigit() and int(page) >= 1:
                pagina = int(page)
            else:
                raise NietGevonden(ONGELDIGE_PAGINA)
            count, items = zoek(uow, (pagina - 1) * PAGINAGROOTTE, PAGINAGROOTTE)
        if pagina > 1 and not items:
            raise NietGevonden(ONGELDIGE_PAGINA)
        laatste = max(1, -(-count // PAGINAGROOTTE))
        return {
            "count": count,
            "next": KlantenService._pagina_url(verzoek, pagina + 1) if pagina < laatste else None,
            "previous": KlantenService._pagina_url(verzoek, pagina - 1) if pagina > 1 else None,
            "results": [weergave(i) for i in items],
        }

    # ---------- audit trail ----------
    def audittrail_list(self, contactmoment_uuid, verzoek: Verzoek) -> list[dict]:
        with UnitOfWork(self.engine) as uow:
            cm_id = uow.contactmomenten.id_van(parse_uuid(contactmoment_uuid))
            if cm_id is None:
                raise NietGevonden()
            return [KlantenService.audit_weergave(r) for r in uow.cm_audittrail.van(cm_id)]

    def audittrail_read(self, contactmoment_uuid, uuid, verzoek: Verzoek) -> dict:
        with UnitOfWork(self.engine) as uow:
            cm_id = uow.contactmomenten.id_van(parse_uuid(contactmoment_uuid))
            regel = uow.cm_audittrail.get(cm_id, parse_uuid(uuid)) if cm_id is not None else None
        if regel is None:
            raise NietGevonden()
        return KlantenService.audit_weergave(regel)

    # ---------- relations: shared ----------
    def _relatie_contactmoment(self, body: dict, fouten: list, uow: UnitOfWork, verzoek: Verzoek):
        """cm-004/cm-005: the relation's contactmoment, resolved as cm-001; errors appended to `fouten`."""
        if "contactmoment" not in body:
            fouten.append(InvalidParam("contactmoment", *v.REQUIRED))
            return None
        ruw = body["contactmoment"]
        if ruw in (None, ""):
            fouten.append(InvalidParam("contactmoment", *v.NULL))
            return None
        try:
            return self._hyperlink(ruw, uow, verzoek)
        except Hyperlinkfout as fout:
            fouten.append(InvalidParam("contactmoment", *fout.code_reden))
            return None

    def _relatie_list(self, verzoek: Verzoek, resource: str, bekend: tuple[str, ...], keuze: tuple[str, tuple],
                      url_veld: str, repository: str) -> dict:
        waarden, page = self._query(verzoek, bekend)
        fouten, filters = [], {}
        for naam in bekend:
            w = waarden.get(naam, "")
            if w == "":
                continue
            if naam == "contactmoment":
                if not v.is_url(w):
                    fouten.append(InvalidParam(naam, *v.INVALID_URL))
                    continue
                gevonden = self._lokaal_contactmoment_uuid(w, verzoek)
                if gevonden is None:
                    filters = None
                elif filters is not None:
                    filters[naam] = gevonden
            elif naam == url_veld:
                if not v.is_url(w):
                    fouten.append(InvalidParam(naam, *v.INVALID_URL))
                elif filters is not None:
                    filters[naam] = w
            elif naam == keuze[0]:
                if w not in keuze[1]:
                    fouten.append(InvalidParam(naam, *v.filter_invalid_choice(w)))
                elif filters is not None:
                    filters[naam] = w
        if fouten:
            raise ValidatieFout(fouten)
        if filters and any("\x00" in str(w) for w in filters.values()):
            filters = None
        return self._pagina(verzoek, page, lambda uow, offset, limit: getattr(uow, repository).zoeken(
            filters, offset, limit), lambda r: self.relatie_weergave(resource, r, verzoek))

    def _relatie_read(self, uuid, repository: str, resource: str, verzoek: Verzoek) -> dict:
        with UnitOfWork(self.engine) as uow:
            relatie = getattr(uow, repository).get(parse_uuid(uuid))
        if relatie is None:
            raise NietGevonden()
        return self.relatie_weergave(resource, relatie, verzoek)

    def _relatie_toevoegen(self, repository: str, resource: str, cm_uuid: uuid_mod.UUID, url: str, keuze: str,
                           uniek: tuple[str, str], uniek_met_keuze: bool, verzoek: Verzoek) -> dict:
        """The write of a validated relation: the contactmoment again (it may be gone since), uniqueness, insert;
        the unique constraint decides between racing creates."""
        nieuw_uuid = uuid_mod.uuid4()
        try:
            with UnitOfWork(self.engine, schrijven=True) as uow:
                cm_id = uow.contactmomenten.id_van(cm_uuid)
                if cm_id is None:
                    raise ValidatieFout([InvalidParam("contactmoment", *DOES_NOT_EXIST)])
                repo = getattr(uow, repository)
                if repo.bestaat(cm_id, url, keuze if uniek_met_keuze else None):
                    raise ValidatieFout([InvalidParam("nonFieldErrors", *uniek)])
                repo.toevoegen(nieuw_uuid, cm_id, url, keuze)
                relatie = repo.get(nieuw_uuid)
                uow.commit()
        except sa.exc.IntegrityError as exc:
            if is_unique_violation(exc, f"uq_{resource[:-2]}_uniek", ("contactmoment_id",)):
                raise ValidatieFout([InvalidParam("nonFieldErrors", *uniek)]) from None
            raise ValidatieFout([InvalidParam("contactmoment", *DOES_NOT_EXIST)]) from None
        return self.relatie_weergave(resource, relatie, verzoek)

    # ---------- klantcontactmoment ----------
    def _klant_fout(self, klant: str, verzoek: Verzoek, uow: UnitOfWork) -> InvalidParam | None | bool:
        """cm-004 for a klant URL of this server (DECISIONS #21): looked up in our own database, no HTTP; the
        answer is what a GET would have given (200, or 404: bad-url). False: not a URL of this server."""
        if not self._eigen_oorsprong(klant, verzoek):
            return False
        pad = self._pad(klant, verzoek)
        m = _KLANT.match((self.layout.eigen_pad("klanten", pad) if pad is not None else None) or "")
        klant_uuid = None
        if m:
            try:
                klant_uuid = uuid_mod.UUID(m.group(1))
            except ValueError:
                pass
        if klant_uuid is not None and uow.klanten.id_van(klant_uuid) is not None:
            return None
        return InvalidParam("klant", "bad-url", f"De URL {klant} gaf als antwoord HTTP 404. Geef een geldige URL op.")

    def klantcontactmoment_create(self, body, verzoek: Verzoek) -> dict:
        if not isinstance(body, dict):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *v.not_a_dict(body))])
        body = self._als_tekst(body, "KlantContactMoment", behalve=("contactmoment",))
        res = self.schemas.object(body, "KlantContactMoment", overslaan=("contactmoment",))
        fouten = list(res.fouten)
        klant = body.get("klant")
        with UnitOfWork(self.engine) as uow:
            cm = self._relatie_contactmoment(body, fouten, uow, verzoek)
            lokaal = self._klant_fout(klant.strip(), verzoek, uow) if isinstance(klant, str) and klant.strip() \
                else None
        if lokaal is False:
            # a foreign klant: fetched with the credentials of its configured service, under the kla-002 guard
            lokaal = self.diensten.bestaat(klant.strip(), "klant", client_id=verzoek.client_id)
        if lokaal:
            # the fetch's verdict first, then the field's own errors (as the reference reports them)
            index = next((i for i, f in enumerate(fouten) if f.name == "klant"), None)
            if index is None:
                index = next((i for i, f in enumerate(fouten) if f.name == "rol"), len(fouten))
            fouten.insert(index, lokaal)
        if fouten:
            raise ValidatieFout(self._op_veldvolgorde(fouten, ("contactmoment", "klant", "rol")))
        return self._relatie_toevoegen("klantcontactmomenten", "klantcontactmomenten", cm.uuid,
                                       res.waarde["klant"], res.waarde["rol"], UNIQUE_KLANTCONTACTMOMENT, True,
                                       verzoek)

    def klantcontactmoment_read(self, uuid, verzoek: Verzoek) -> dict:
        return self._relatie_read(uuid, "klantcontactmomenten", "klantcontactmomenten", verzoek)

    def klantcontactmoment_list(self, verzoek: Verzoek) -> dict:
        return self._relatie_list(verzoek, "klantcontactmomenten", KCM_FILTERS, ("rol", ROLLEN), "klant",
                                  "klantcontactmomenten")

    def klantcontactmoment_delete(self, uuid, verzoek: Verzoek) -> None:
        with UnitOfWork(self.engine, schrijven=True) as uow:
            relatie = uow.klantcontactmomenten.get(parse_uuid(uuid))
            if relatie is None:
                raise NietGevonden()
            uow.klantcontactmomenten.verwijderen(relatie.id)
            uow.commit()

    # ---------- objectcontactmoment ----------
    def objectcontactmoment_create(self, body, verzoek: Verzoek) -> dict:
        if not isinstance(body, dict):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *v.not_a_dict(body))])
        body = self._als_tekst(body, "ObjectContactMoment", behalve=("contactmoment",))
        res = self.schemas.object(body, "ObjectContactMoment", overslaan=("contactmoment",))
        fouten = list(res.fouten)
        with UnitOfWork(self.engine) as uow:
            cm = self._relatie_contactmoment(body, fouten, uow, verzoek)
        if fouten:
            raise ValidatieFout(self._op_veldvolgorde(fouten, ("contactmoment", "object", "objectType")))
        object_url = res.waarde["object"]
        cm_url = self.url(verzoek, "contactmomenten", cm.uuid)
        # cm-005: the zaak exists and looks like one; cm-006: the Zaken API holds the mirror relation
        fout = self.diensten.zaak_fout(object_url, client_id=verzoek.client_id)
        if fout:
            raise ValidatieFout([fout])
        if self.zaak_relatie_controle:
            aantal = self.diensten.zaakcontactmomenten(object_url, cm_url, client_id=verzoek.client_id,
                                                       bij="create")
            if aantal == 0:
                raise ValidatieFout([InvalidParam("nonFieldErrors", "inconsistent-relation",
                                                  "The contactmoment has no relations to zaak")])
        return self._relatie_toevoegen("objectcontactmomenten", "objectcontactmomenten", cm.uuid, object_url,
                                       res.waarde["objectType"], UNIQUE_OBJECTCONTACTMOMENT, False, verzoek)

    def objectcontactmoment_read(self, uuid, verzoek: Verzoek) -> dict:
        return self._relatie_read(uuid, "objectcontactmomenten", "objectcontactmomenten", verzoek)

    def objectcontactmoment_list(self, verzoek: Verzoek) -> dict:
        return self._relatie_list(verzoek, "objectcontactmomenten", OCM_FILTERS, ("objectType", OBJECT_TYPES),
                                  "object", "objectcontactmomenten")

    def objectcontactmoment_delete(self, uuid, verzoek: Verzoek) -> None:
        relatie_uuid = parse_uuid(uuid)
        with UnitOfWork(self.engine) as uow:
            relatie = uow.objectcontactmomenten.get(relatie_uuid)
        if relatie is None:
            raise NietGevonden()
        if self.zaak_relatie_controle:
            # cm-006: while the Zaken API still holds its zaakcontactmoment, ours stays (asked without a
            # database connection held)
            cm_url = self.url(verzoek, "contactmomenten", relatie.contactmoment_uuid)
            if self.diensten.zaakcontactmomenten(relatie.gegevens["object"], cm_url, client_id=verzoek.client_id,
                                                 bij="delete"):
                raise ValidatieFout([InvalidParam(
                    "nonFieldErrors", "remote-relation-exists",
                    "The canonical remote relation still exists, this relation cannot be deleted.")])
        with UnitOfWork(self.engine, schrijven=True) as uow:
            uow.objectcontactmomenten.verwijderen(relatie.id)
            uow.commit()
