"""Realistic klanten for the benchmark, and the bulk seeding of PostgreSQL.

A generated klant is an API request body (what a client would POST). Seeding turns it into rows with
the server's own code: the service's validation and defaults (`_valideer`, `_samengesteld`), then
`storage.klanten.naar_kolommen` for the klant row and the service's representation for the audit row,
so the rows are the ones `POST /klanten` (without `klantnummer`, kla-001) would have written.
The rows go in with PostgreSQL COPY; the secondary indexes are dropped first and built again after.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
import uuid as uuid_mod
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------------
# numbers that pass the 11-proef
# --------------------------------------------------------------------------------------------------
BSN_WEGINGEN = (9, 8, 7, 6, 5, 4, 3, 2)


def elfproef_nummer(rng: random.Random) -> str:
    """A 9-digit number that passes the 11-proef (BSN, RSIN): sum(d_i * w_i) - d_9 is a multiple of 11."""
    while True:
        eerste = [rng.randrange(1, 10)] + [rng.randrange(10) for _ in range(7)]
        laatste = sum(d * w for d, w in zip(eerste, BSN_WEGINGEN)) % 11
        if laatste < 10:
            return "".join(map(str, eerste)) + str(laatste)


def _controleer_elfproef(nummer: str) -> bool:
    return len(nummer) == 9 and sum(int(c) * w for c, w in zip(nummer, (9, 8, 7, 6, 5, 4, 3, 2, -1))) % 11 == 0


# --------------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------------
VOORNAMEN = ("Jan", "Piet", "Klaas", "Anna", "Sanne", "Emma", "Daan", "Lotte", "Sem", "Julia", "Lucas", "Sophie",
             "Noah", "Mila", "Finn", "Tess", "Milan", "Zoë", "Fatima", "Mohammed", "Wei", "Ayşe", "Henk", "Ingrid",
             "Kees", "Marieke", "Bram", "Femke", "Joris", "Esther", "Ruben", "Yara", "Thijs", "Noor", "Sven", "Iris")
ACHTERNAMEN = (("de", "Jong"), ("", "Jansen"), ("de", "Vries"), ("van den", "Berg"), ("van", "Dijk"), ("", "Bakker"),
               ("", "Janssen"), ("", "Visser"), ("", "Smit"), ("", "Meijer"), ("de", "Boer"), ("", "Mulder"),
               ("de", "Groot"), ("", "Bos"), ("", "Vos"), ("", "Peters"), ("", "Hendriks"), ("van", "Leeuwen"),
               ("", "Dekker"), ("", "Brouwer"), ("de", "Wit"), ("", "Dijkstra"), ("", "Smits"), ("de", "Graaf"),
               ("van der", "Meer"), ("", "Yılmaz"), ("el", "Amrani"), ("", "Kok"), ("", "Jacobs"), ("van", "Vliet"),
               ("", "Vermeulen"), ("van den", "Heuvel"), ("van der", "Veen"), ("", "Huisman"), ("", "Schouten"))
STRATEN = ("Dorpsstraat", "Kerkstraat", "Schoolstraat", "Molenweg", "Stationsweg", "Hoofdstraat", "Julianastraat",
           "Wilhelminastraat", "Beatrixlaan", "Nieuwstraat", "Marktplein", "Parallelweg", "Industrieweg",
           "Eikenlaan", "Lindelaan", "Prinses Irenestraat", "Kastanjelaan", "Burgemeester de Withstraat",
           "Oranjestraat", "Sportlaan", "Havenkade", "Singel", "Vondelstraat", "Rembrandtplein", "Zuidwal")
PLAATSEN = (("Amsterdam", "10"), ("Rotterdam", "30"), ("Den Haag", "25"), ("Utrecht", "35"), ("Eindhoven", "56"),
            ("Groningen", "97"), ("Tilburg", "50"), ("Almere", "13"), ("Breda", "48"), ("Nijmegen", "65"),
            ("Apeldoorn", "73"), ("Haarlem", "20"), ("Arnhem", "68"), ("Enschede", "75"), ("Amersfoort", "38"),
            ("Zwolle", "80"), ("Leiden", "23"), ("Maastricht", "62"), ("Dordrecht", "33"), ("Zoetermeer", "27"),
            ("'s-Hertogenbosch", "52"), ("Leeuwarden", "89"), ("Delft", "26"), ("Gouda", "28"), ("Assen", "94"))
POSTCODE_LETTERS = [a + b for a in "ABCDEGHJKLMNPRTVWXZ" for b in "ABCDEGHJKLMNPRTVWXZ"]
BEDRIJFSVORMEN = ("B.V.", "N.V.", "Stichting", "Vereniging", "V.O.F.", "Coöperatie U.A.", "Holding B.V.")
BRANCHES = ("Bouw", "Installatie", "Zorg", "Advies", "Transport", "Bakkerij", "Techniek", "Schoonmaak", "ICT",
            "Kinderopvang", "Makelaardij", "Accountancy", "Hoveniers", "Catering", "Media", "Sport")
RECHTSVORMEN = ("besloten_vennootschap", "naamloze_vennootschap", "stichting", "vereniging",
                "vennootschap_onder_firma", "cooperatie_europees_economische_samenwerking", "maatschap",
                "commanditaire_vennootschap", "publiekrechtelijke_rechtspersoon")
FUNCTIES = ("", "", "", "Directeur", "Contactpersoon", "Eigenaar", "Bewindvoerder", "Gemachtigde", "Office manager")
DOMEINEN = ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "xs4all.nl", "live.nl", "icloud.com")
BUITENLAND = (("5010", "België", "Rue de la Loi 16", "1000 Bruxelles"),
              ("6029", "Frankrijk", "12 Rue de Rivoli", "75004 Paris"),
              ("5011", "Spanje", "Calle Mayor 5", "28013 Madrid"))

# the subject types of the issue: ~60% natuurlijk persoon, 25% niet-natuurlijk persoon, 15% vestiging
SUBJECT_MIX = (("natuurlijk_persoon", 0.60), ("niet_natuurlijk_persoon", 0.25), ("vestiging", 0.15))
ADRES_KANS = 0.70           # share of klanten with an adres
SUBJECT_URL_KANS = 0.40     # share of seeded klanten that also reference their subject by URL
BSN_HERGEBRUIK = 0.05       # share of natuurlijke personen whose BSN already belongs to another klant


def _ascii(tekst: str) -> str:
    import unicodedata
    return "".join(c for c in unicodedata.normalize("NFKD", tekst) if c.isascii() and (c.isalnum())).lower()


@dataclass
class Generator:
    """Deterministic (seeded) generator of klant request bodies."""
    seed: int = 1
    bronorganisaties: tuple[str, ...] = ()
    rng: random.Random = field(init=False)
    bsns: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        if not self.bronorganisaties:
            r = random.Random(4242)
            self.bronorganisaties = tuple(elfproef_nummer(r) for _ in range(3))

    # ---- parts ----
    def bronorganisatie(self) -> str:
        x = self.rng.random()
        return self.bronorganisaties[0 if x < 0.6 else 1 if x < 0.9 else 2]

    def subject_type(self) -> str:
        x, acc = self.rng.random(), 0.0
        for naam, kans in SUBJECT_MIX:
            acc += kans
            if x < acc:
                return naam
        return SUBJECT_MIX[-1][0]

    def bsn(self) -> str:
        if self.bsns and self.rng.random() < BSN_HERGEBRUIK:
            return self.rng.choice(self.bsns)
        nummer = elfproef_nummer(self.rng)
        self.bsns.append(nummer)
        return nummer

    def postcode(self, prefix: str) -> str:
        return f"{prefix}{self.rng.randrange(10, 100)}{self.rng.choice(POSTCODE_LETTERS)}"

    def adres(self) -> dict:
        r = self.rng
        plaats, prefix = r.choice(PLAATSEN)
        buitenlands = r.random() < 0.02
        return {
            "straatnaam": r.choice(STRATEN),
            "huisnummer": r.randrange(1, 300),
            "huisletter": r.choice("ABC") if r.random() < 0.1 else "",
            "huisnummertoevoeging": r.choice(("1", "2", "bis", "hs", "A")) if r.random() < 0.06 else "",
            "postcode": "" if buitenlands else self.postcode(prefix),
            "woonplaatsnaam": plaats,
            "landcode": "5010" if buitenlands else "6030",
        }

    def verblijfsadres(self) -> dict:
        r = self.rng
        plaats, prefix = r.choice(PLAATSEN)
        return {
            "aoaIdentificatie": f"{r.randrange(1, 2000):04d}2000{r.randrange(10**8):08d}",
            "wplWoonplaatsNaam": plaats,
            "gorOpenbareRuimteNaam": r.choice(STRATEN),
            "aoaPostcode": self.postcode(prefix),
            "aoaHuisnummer": r.randrange(1, 300),
            "aoaHuisletter": r.choice("AB") if r.random() < 0.08 else "",
            "aoaHuisnummertoevoeging": "",
            "inpLocatiebeschrijving": "",
        }

    def buitenland(self) -> dict:
        code, naam, regel1, regel2 = self.rng.choice(BUITENLAND)
        return {"lndLandcode": code, "lndLandnaam": naam, "subAdresBuitenland1": regel1,
                "subAdresBuitenland2": regel2, "subAdresBuitenland3": ""}

    def telefoon(self) -> str:
        r = self.rng
        if r.random() < 0.6:
            return f"06{r.randrange(10**8):08d}"
        return f"0{r.randrange(10, 100)}-{r.randrange(10**6, 10**7)}"

    # ---- whole klanten ----
    def klant(self, *, subject_url: bool | None = None) -> dict:
        """One POST body (no klantnummer: the server generates it, kla-001)."""
        r = self.rng
        soort = self.subject_type()
        met_url = (r.random() < SUBJECT_URL_KANS) if subject_url is None else subject_url
        voornaam = r.choice(VOORNAMEN)
        voorvoegsel, achternaam = r.choice(ACHTERNAMEN)
        body = {"bronorganisatie": self.bronorganisatie(), "websiteUrl": "", "functie": "", "bedrijfsnaam": "",
                "voornaam": "", "voorvoegselAchternaam": "", "achternaam": "",
                "telefoonnummer": self.telefoon() if r.random() < 0.8 else "", "emailadres": "",
                "subject": "", "subjectType": soort}
        if soort == "natuurlijk_persoon":
            bsn = self.bsn()
            body.update(voornaam=voornaam, voorvoegselAchternaam=voorvoegsel, achternaam=achternaam,
                        websiteUrl="https://www.mijnoverheid.nl")
            if r.random() < 0.7:
                body["emailadres"] = f"{_ascii(voornaam)}.{_ascii(achternaam)}{r.randrange(1000)}@{r.choice(DOMEINEN)}"
            sid = {"inpBsn": bsn, "geslachtsnaam": achternaam, "voorvoegselGeslachtsnaam": voorvoegsel,
                   "voorletters": voornaam[0] + ".", "voornamen": voornaam,
                   "geslachtsaanduiding": r.choice("mvvmo" if r.random() < 0.05 else "mv"),
                   "geboortedatum": f"{r.randrange(1930, 2006)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"}
            if r.random() < 0.3:
                sid["inpANummer"] = f"{r.randrange(1, 10)}{r.randrange(10**9):09d}"
            if r.random() < 0.5:
                sid["verblijfsadres"] = self.verblijfsadres()
            elif r.random() < 0.06:
                sid["subVerblijfBuitenland"] = self.buitenland()
            if met_url:
                body["subject"] = f"https://brp.example.nl/haalcentraal/api/brp/ingeschrevenpersonen/{bsn}"
        else:
            naam = f"{r.choice(BRANCHES)} {achternaam} {r.choice(BEDRIJFSVORMEN)}"
            slug = _ascii(naam)[:40]
            body.update(bedrijfsnaam=naam, functie=r.choice(FUNCTIES), websiteUrl=f"https://www.{slug}.nl",
                        emailadres=f"info@{slug}.nl" if r.random() < 0.8 else "")
            if r.random() < 0.5:
                body.update(voornaam=voornaam, voorvoegselAchternaam=voorvoegsel, achternaam=achternaam)
            if soort == "niet_natuurlijk_persoon":
                rsin = elfproef_nummer(r)
                sid = {"innNnpId": rsin, "annIdentificatie": "", "statutaireNaam": naam,
                       "innRechtsvorm": r.choice(RECHTSVORMEN),
                       "bezoekadres": f"{r.choice(STRATEN)} {r.randrange(1, 300)}, {r.choice(PLAATSEN)[0]}"}
                if r.random() < 0.03:
                    sid["subVerblijfBuitenland"] = self.buitenland()
                url = f"https://kvk.example.nl/api/v1/basisprofielen/{rsin}"
            else:
                nummer = f"{r.randrange(10**11, 10**12)}"
                sid = {"vestigingsNummer": nummer,
                       "handelsnaam": [naam] + ([f"{achternaam} {r.choice(BRANCHES)}"] if r.random() < 0.3 else [])}
                if r.random() < 0.8:
                    sid["verblijfsadres"] = self.verblijfsadres()
                url = f"https://kvk.example.nl/api/v1/vestigingsprofielen/{nummer}"
            if met_url:
                body["subject"] = url
        body["adres"] = self.adres() if r.random() < ADRES_KANS else None
        body["subjectIdentificatie"] = sid
        return body

    def patch(self) -> dict:
        """A typical PATCH body: contact details or part of the address."""
        r = self.rng
        x = r.random()
        if x < 0.4:
            return {"telefoonnummer": self.telefoon()}
        if x < 0.7:
            return {"emailadres": f"{_ascii(r.choice(VOORNAMEN))}{r.randrange(10**4)}@{r.choice(DOMEINEN)}",
                    "telefoonnummer": self.telefoon()}
        if x < 0.9:
            return {"adres": {"straatnaam": r.choice(STRATEN), "huisnummer": r.randrange(1, 300)}}
        return {"functie": r.choice(FUNCTIES[3:])}


# --------------------------------------------------------------------------------------------------
# contactmomenten
# --------------------------------------------------------------------------------------------------
# kanaal of the contact, with how often each is seen at a gemeente's KCC (telephone first)
CM_KANALEN = (("telefoon", 0.45), ("e-mail", 0.20), ("balie", 0.12), ("website", 0.10), ("chat", 0.08),
              ("brief", 0.05))
CM_ONDERWERPEN = ("paspoort", "rijbewijs", "verhuizing", "afvalinzameling", "parkeervergunning", "bijstand",
                  "omgevingsvergunning", "WOZ-beschikking", "gemeentelijke belastingen", "kwijtschelding",
                  "Wmo-voorziening", "geboorteaangifte", "huwelijk", "uittreksel BRP", "grofvuil", "melding openbare ruimte")
CM_ZINNEN = ("Klant belt over de status van de aanvraag {o}.", "Vraag over de kosten van {o}; uitleg gegeven.",
             "Klant wil een afspraak maken voor {o}.", "Terugbelverzoek over {o}, graag na 14:00.",
             "Klacht over de afhandeling van {o}; doorgezet naar de vakafdeling.",
             "Informatie over {o} per e-mail nagestuurd.", "Klant meldt een wijziging die {o} raakt.",
             "Doorverbonden met de backoffice {o}.", "Vraag beantwoord met de informatie op de website over {o}.")
CM_VERVOLG_KANS = 0.20        # share of contactmomenten that follow up an earlier one (vorigContactmoment)
CM_KLANT_KANS = 0.85          # share with a klantcontactmoment (a second one for 10% of those)
MEDEWERKERS = 400             # distinct KCC employees


class ContactmomentGenerator:
    """Contactmoment bodies as a KCC's client POSTs them: a medewerkerIdentificatie (the employee's own
    system has no URL for them, so medewerker stays empty in 80%), kanaal, a short tekst, onderwerpLinks."""

    def __init__(self, seed: int = 1, bronorganisaties: tuple[str, ...] | None = None):
        self.rng = random.Random(seed)
        self.bronorganisaties = bronorganisaties or Generator(seed=seed).bronorganisaties
        r = random.Random(seed + 31)
        self.medewerkers = []
        for i in range(MEDEWERKERS):
            voorvoegsel, achternaam = r.choice(ACHTERNAMEN)
            voornaam = r.choice(VOORNAMEN)
            self.medewerkers.append({"identificatie": f"mw{100000 + i}", "achternaam": achternaam,
                                     "voorletters": voornaam[0] + ".", "voorvoegselAchternaam": voorvoegsel})

    def contactmoment(self, *, registratiedatum: str | None = None) -> dict:
        r = self.rng
        x, kanaal = r.random(), CM_KANALEN[-1][0]
        for k, w in CM_KANALEN:
            x -= w
            if x < 0:
                kanaal = k
                break
        onderwerp = r.choice(CM_ONDERWERPEN)
        tekst = " ".join(z.format(o=onderwerp) for z in r.sample(CM_ZINNEN, r.randrange(1, 4)))
        mw = r.choice(self.medewerkers)
        x = r.random()
        body = {"bronorganisatie": self.bronorganisaties[0 if x < 0.6 else 1 if x < 0.9 else 2],
                "kanaal": kanaal, "voorkeurskanaal": r.choice(("", "", "telefoon", "e-mail", "post")),
                "voorkeurstaal": "nld" if r.random() < 0.95 else r.choice(("eng", "tur", "ara", "pol")),
                "tekst": tekst, "initiatiefnemer": "klant" if r.random() < 0.85 else "gemeente",
                "onderwerpLinks": [f"https://www.gemeente.example/producten/{_ascii(onderwerp)}"
                                   for _ in range(r.random() < 0.6)],
                "medewerker": "", "medewerkerIdentificatie": dict(mw)}
        if r.random() < 0.2:
            body["medewerker"] = f"https://medewerkers.gemeente.example/api/v1/medewerkers/{mw['identificatie']}"
        if registratiedatum is not None:
            body["registratiedatum"] = registratiedatum
        return body


# --------------------------------------------------------------------------------------------------
# from request body to rows, with the server's own code
# --------------------------------------------------------------------------------------------------
class _GeenSubjectControle:
    """kla-002 is a check of the create request, not of the stored row: seeding does not fetch subjects."""

    def fout(self, subject, client_id=""):
        return None


class RijenBouwer:
    """Builds the klant and audittrail rows the server would write for `POST /klanten` of a body."""

    def __init__(self, base_url: str, client_id: str, applicatie_label: str, user_id: str = "bench",
                 user_representation: str = "Benchmark"):
        import yaml
        from klanten_api.settings import SPEC_PATH
        from service.klanten import KlantenService, Verzoek
        from service.validatie import SchemaValidatie
        from service import constants
        from storage import audittrail as audit_storage
        from storage.klanten import naar_kolommen

        spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))      # as klanten_api.app.load_spec
        self.service = KlantenService(None, SchemaValidatie(spec["components"]), _GeenSubjectControle(),
                                      notificeren=False)
        for naam in ("_valideer", "_samengesteld", "_regel_subject", "weergave", "_resource_weergave"):
            if not hasattr(self.service, naam):
                raise SystemExit(f"bench: KlantenService.{naam} is gone; update bench/dataset.py to the new service")
        self.verzoek = Verzoek(base_url=base_url, client_id=client_id, applicatie_label=applicatie_label,
                               user_id=user_id, user_representation=user_representation)
        self.naar_kolommen = naar_kolommen
        self.audit_velden = audit_storage.VELDEN
        self.c = constants

    def gegevens(self, body: dict) -> dict:
        """The stored klant (API names) for a create body, exactly as klant_create composes it."""
        waarde, sid, sid_gegeven = self.service._valideer(body, gedeeltelijk=False, bestaand=None)
        g = self.service._samengesteld(waarde, sid, sid_gegeven, None)
        self.service._regel_subject(g)
        return g

    def rijen(self, id: int, klant_uuid: uuid_mod.UUID, g: dict, moment: dt.datetime) -> tuple[dict, dict]:
        klant_rij = {"id": id, "uuid": klant_uuid, "aangemaakt": moment, **self.naar_kolommen(g)}
        weergave = self.service.weergave(klant_uuid, g, self.verzoek)
        url = weergave["url"]
        c, v = self.c, self.verzoek
        regel = {"uuid": uuid_mod.uuid4(), "bron": c.COMPONENT, "applicatieId": v.client_id,
                 "applicatieWeergave": v.applicatie_label, "gebruikersId": v.user_id,
                 "gebruikersWeergave": v.user_representation, "actie": "create",
                 "actieWeergave": c.ACTIES["create"], "resultaat": 201, "hoofdObject": url, "resource": c.RESOURCE,
                 "resourceUrl": url, "toelichting": "", "resourceWeergave": self.service._resource_weergave(g),
                 "aanmaakdatum": moment, "wijzigingen": {"oud": None, "nieuw": weergave}}
        audit_rij = {kolom: regel[veld] for veld, kolom in self.audit_velden}
        audit_rij.update(klant_id=id, logrecord_id="")
        return klant_rij, audit_rij


class CmRijenBouwer:
    """Builds the contactmoment and contactmoment_audittrail rows the server would write for
    `POST /contactmomenten` of a body (its validation, defaults, representation and audit row), and the
    klantcontactmoment rows of `POST /klantcontactmomenten` (klant URL and its digest)."""

    def __init__(self, base_url: str, client_id: str, applicatie_label: str, user_id: str = "bench",
                 user_representation: str = "Benchmark"):
        from klanten_api.apis import CONTACTMOMENTEN, KLANTEN, Layout
        from klanten_api.settings import Settings
        from service.contactmomenten import ContactmomentenService
        from service.klanten import Verzoek
        from service.validatie import SchemaValidatie
        from storage import audittrail as audit_storage
        from storage.contactmomenten import naar_kolommen, sleutel

        # the layout of a server with default base paths, as the benchmark's server runs
        layout = Layout.from_settings(Settings.from_env({}), (KLANTEN, CONTACTMOMENTEN))
        spec = layout.api("contactmomenten").spec
        self.service = ContactmomentenService(None, SchemaValidatie(spec["components"]), None, layout,
                                              notificeren=False)
        for naam in ("_valideer", "_samengesteld", "weergave", "_audit", "_resource_weergave", "url"):
            if not hasattr(self.service, naam):
                raise SystemExit(f"bench: ContactmomentenService.{naam} is gone; update bench/dataset.py")
        self.verzoek = Verzoek(base_url=base_url, client_id=client_id, applicatie_label=applicatie_label,
                               user_id=user_id, user_representation=user_representation)
        self.naar_kolommen, self.sleutel, self.audit_kolommen = naar_kolommen, sleutel, audit_storage.kolommen

    def gegevens(self, body: dict) -> dict:
        """The stored contactmoment (API names) for a create body without vorigContactmoment (that is a link,
        set by the seeding as an id), exactly as contactmoment_create composes it."""
        assert "vorigContactmoment" not in body
        waarde, _, _ = self.service._valideer(body, None, None, self.verzoek, gedeeltelijk=False)
        return self.service._samengesteld(waarde, None, waarde.get("registratiedatum"))

    def rijen(self, id: int, cm_uuid: uuid_mod.UUID, g: dict, vorig: tuple[int, uuid_mod.UUID] | None,
              moment: dt.datetime) -> tuple[dict, dict]:
        rij = {"id": id, "uuid": cm_uuid, "aangemaakt": moment,
               **self.naar_kolommen(g, vorig[0] if vorig else None)}
        nieuw = self.service.weergave(None, self.verzoek, uuid=cm_uuid, gegevens=g,
                                      vorig_uuid=vorig[1] if vorig else None)
        regel = self.service._audit(id, "create", 201, nieuw["url"], self.service._resource_weergave(g), None,
                                    nieuw, self.verzoek, moment)
        return rij, self.audit_kolommen(*regel, "contactmoment_id")

    def klant_rij(self, id: int, cm_id: int, klant_url: str, rol: str) -> dict:
        return {"id": id, "uuid": uuid_mod.uuid4(), "contactmoment_id": cm_id, "klant": klant_url,
                "klant_sleutel": self.sleutel(klant_url), "rol": rol}


# --------------------------------------------------------------------------------------------------
# progress bar
# --------------------------------------------------------------------------------------------------
class Voortgang:
    def __init__(self, totaal: int, label: str, stream=sys.stderr):
        self.totaal, self.label, self.stream = totaal, label, stream
        self.start = time.perf_counter()
        self._laatst = 0.0
        self._getoond = -1
        self.tty = stream.isatty()

    def update(self, gedaan: int, force: bool = False) -> None:
        nu = time.perf_counter()
        if (not force and nu - self._laatst < (0.2 if self.tty else 5.0)) or gedaan == self._getoond:
            return
        self._laatst, self._getoond = nu, gedaan
        verstreken = nu - self.start
        tempo = gedaan / verstreken if verstreken > 0 else 0.0
        eta = (self.totaal - gedaan) / tempo if tempo > 0 else 0.0
        breedte = 30
        vol = int(breedte * gedaan / self.totaal) if self.totaal else breedte
        balk = "#" * vol + "-" * (breedte - vol)
        regel = (f"{self.label} [{balk}] {gedaan:>9,}/{self.totaal:,} {100 * gedaan / max(1, self.totaal):5.1f}% "
                 f"{tempo:>8,.0f}/s eta {eta:4.0f}s")
        self.stream.write(("\r" + regel) if self.tty else (regel + "\n"))
        self.stream.flush()

    def klaar(self, gedaan: int) -> None:
        self.update(gedaan, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------------------------------
@dataclass
class SeedResultaat:
    aantal: int
    seconden: float
    genereren_seconden: float
    indexen_seconden: float
    uuids: list[str]
    bsns: list[str]
    voorbeelden: dict            # subject type -> (uuid, body) of a seeded klant, for the exactness check
    bronorganisaties: tuple[str, ...]


def _secundaire_indexen(cur, tabel: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the indexes of `tabel` that do not back a constraint."""
    cur.execute("""
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        ORDER BY i.relname""", (tabel,))
    return list(cur.fetchall())


def seed(conninfo: str, aantal: int, bouwer: RijenBouwer, *, seed_waarde: int = 1, batch: int = 5000,
         dagen: int = 3 * 365) -> SeedResultaat:
    """Insert `aantal` klanten (and their `create` audit rows) with COPY into a freshly migrated database."""
    import psycopg

    gen = Generator(seed=seed_waarde)
    start = time.perf_counter()
    begin_moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=dagen)
    stap = dt.timedelta(days=dagen) / max(1, aantal)
    uuids: list[str] = []
    voorbeelden: dict[str, tuple[str, dict]] = {}
    laatste: dict[str, int] = {b: 0 for b in gen.bronorganisaties}
    genereren = 0.0
    voortgang = Voortgang(aantal, "seeding")

    with psycopg.connect(conninfo, autocommit=False) as conn:
        with conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("SET synchronous_commit = off")
            indexen = _secundaire_indexen(cur, "klant") + _secundaire_indexen(cur, "audittrail")
            for naam, _ in indexen:
                cur.execute(f'DROP INDEX "{naam}"')
            klant_kolommen = audit_kolommen = None
            gedaan = 0
            while gedaan < aantal:
                n = min(batch, aantal - gedaan)
                t0 = time.perf_counter()
                klant_rijen, audit_rijen = [], []
                for i in range(n):
                    id = gedaan + i + 1
                    body = gen.klant()
                    g = bouwer.gegevens(body)
                    bron = g["bronorganisatie"]
                    laatste[bron] += 1
                    g["klantnummer"] = str(laatste[bron])                 # kla-001: the generated sequence
                    klant_uuid = uuid_mod.uuid4()
                    k, a = bouwer.rijen(id, klant_uuid, g, begin_moment + stap * id)
                    if klant_kolommen is None:
                        klant_kolommen, audit_kolommen = list(k), list(a)
                    klant_rijen.append(tuple(_copy_waarde(k[c]) for c in klant_kolommen))
                    audit_rijen.append(tuple(_copy_waarde(a[c]) for c in audit_kolommen))
                    uuids.append(str(klant_uuid))
                    if body["subjectType"] not in voorbeelden:
                        voorbeelden[body["subjectType"]] = (str(klant_uuid), body)
                genereren += time.perf_counter() - t0
                with cur.copy(f"COPY klant ({', '.join(klant_kolommen)}) FROM STDIN") as copy:
                    for rij in klant_rijen:
                        copy.write_row(rij)
                with cur.copy(f"COPY audittrail ({', '.join(audit_kolommen)}) FROM STDIN") as copy:
                    for rij in audit_rijen:
                        copy.write_row(rij)
                gedaan += n
                voortgang.update(gedaan)
            voortgang.klaar(gedaan)
            for tabel in ("klant", "audittrail"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{tabel}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {tabel}))")
            conn.commit()
            t_idx = time.perf_counter()
            print(f"seeding: building {len(indexen)} indexes ...", file=sys.stderr, flush=True)
            cur.execute("SET max_parallel_maintenance_workers = 2")
            for _, ddl in indexen:
                cur.execute(ddl)
            conn.commit()
            indexen_seconden = time.perf_counter() - t_idx
        conn.autocommit = True
        with conn.cursor() as cur:
            print("seeding: VACUUM ANALYZE ...", file=sys.stderr, flush=True)
            cur.execute("VACUUM (ANALYZE) klant")
            cur.execute("VACUUM (ANALYZE) audittrail")
    # kla-001: generation continues after the numbers written above, as the server would have left it
    from storage.database import make_engine
    from storage.klanten import KlantenRepository
    engine = make_engine(conninfo, pool_size=1, max_overflow=0)
    with engine.begin() as sa_conn:
        repo = KlantenRepository(sa_conn)
        for bron, nummer in laatste.items():
            repo.zet_laatste_klantnummer(bron, nummer)
    engine.dispose()
    return SeedResultaat(aantal=aantal, seconden=time.perf_counter() - start, genereren_seconden=genereren,
                         indexen_seconden=indexen_seconden, uuids=uuids, bsns=list(dict.fromkeys(gen.bsns)),
                         voorbeelden=voorbeelden, bronorganisaties=gen.bronorganisaties)


def _copy_waarde(waarde):
    # JSON columns: the text psycopg's Json adapter sends for SQLAlchemy's sa.JSON (json.dumps, default separators)
    if isinstance(waarde, (dict, list)):
        return json.dumps(waarde)
    return waarde


@dataclass
class CmSeedResultaat:
    aantal: int
    klantcontactmomenten: int
    met_vorig: int
    seconden: float
    uuids: list[str]
    voorbeelden: dict            # id -> body of seeded contactmomenten without vorigContactmoment (row check)


def seed_contactmomenten(conninfo: str, aantal: int, bouwer: CmRijenBouwer, klant_uuids: list[str], base_url: str,
                         *, seed_waarde: int = 1, batch: int = 5000, dagen: int = 3 * 365) -> CmSeedResultaat:
    """Insert `aantal` contactmomenten (with their `create` audit rows), CM_VERVOLG_KANS of them following up
    an earlier one of the last few hundred (vorigContactmoment: one-to-one), and klantcontactmomenten to
    seeded klanten (URLs of this server's Klanten API, as a KCC client would send them), with COPY."""
    import psycopg

    gen = ContactmomentGenerator(seed=seed_waarde + 11)
    r = random.Random(seed_waarde + 13)
    start = time.perf_counter()
    begin_moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=dagen)
    stap = dt.timedelta(days=dagen) / max(1, aantal)
    uuids: list[str] = []
    open_ids: list[tuple[int, uuid_mod.UUID]] = []     # recent contactmomenten no later one follows yet
    kcm_id = met_vorig = 0
    voorbeelden: dict[int, dict] = {}
    voortgang = Voortgang(aantal, "seeding contactmomenten")
    with psycopg.connect(conninfo, autocommit=False) as conn:
        with conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("SET synchronous_commit = off")
            indexen = [i for t in ("contactmoment", "contactmoment_audittrail", "klantcontactmoment")
                       for i in _secundaire_indexen(cur, t)]
            for naam, _ in indexen:
                cur.execute(f'DROP INDEX "{naam}"')
            kolommen = {}
            gedaan = 0
            while gedaan < aantal:
                n = min(batch, aantal - gedaan)
                rijen = {"contactmoment": [], "contactmoment_audittrail": [], "klantcontactmoment": []}
                for i in range(n):
                    id = gedaan + i + 1
                    moment = begin_moment + stap * id
                    body = gen.contactmoment(registratiedatum=moment.isoformat().replace("+00:00", "Z"))
                    g = bouwer.gegevens(body)
                    vorig = None
                    if open_ids and r.random() < CM_VERVOLG_KANS:
                        vorig = open_ids.pop(r.randrange(len(open_ids)))
                        met_vorig += 1
                    cm_uuid = uuid_mod.uuid4()
                    cm, audit = bouwer.rijen(id, cm_uuid, g, vorig, moment)
                    open_ids.append((id, cm_uuid))
                    if len(open_ids) > 500:
                        open_ids.pop(0)
                    uitvoer = [("contactmoment", cm), ("contactmoment_audittrail", audit)]
                    if klant_uuids and r.random() < CM_KLANT_KANS:
                        klanten = r.sample(klant_uuids, 2 if r.random() < 0.1 else 1)
                        for k, rol in zip(klanten, ("gesprekspartner", "belanghebbende")):
                            kcm_id += 1
                            uitvoer.append(("klantcontactmoment", bouwer.klant_rij(
                                kcm_id, id, f"{base_url}/api/v1/klanten/{k}", rol)))
                    for tabel, rij in uitvoer:
                        kolommen.setdefault(tabel, list(rij))
                        rijen[tabel].append(tuple(_copy_waarde(rij[c]) for c in kolommen[tabel]))
                    uuids.append(str(cm_uuid))
                    if vorig is None and len(voorbeelden) < 3:
                        voorbeelden[id] = body
                for tabel, lijst in rijen.items():
                    if lijst:
                        with cur.copy(f"COPY {tabel} ({', '.join(kolommen[tabel])}) FROM STDIN") as copy:
                            for rij in lijst:
                                copy.write_row(rij)
                gedaan += n
                voortgang.update(gedaan)
            voortgang.klaar(gedaan)
            for tabel in ("contactmoment", "contactmoment_audittrail", "klantcontactmoment"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{tabel}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {tabel}))")
            conn.commit()
            cur.execute("SET max_parallel_maintenance_workers = 2")
            for _, ddl in indexen:
                cur.execute(ddl)
            conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            for tabel in ("contactmoment", "contactmoment_audittrail", "klantcontactmoment"):
                cur.execute(f"VACUUM (ANALYZE) {tabel}")
    return CmSeedResultaat(aantal=aantal, klantcontactmomenten=kcm_id, met_vorig=met_vorig,
                           seconden=time.perf_counter() - start, uuids=uuids, voorbeelden=voorbeelden)
