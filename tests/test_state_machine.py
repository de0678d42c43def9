"""A hypothesis state machine driving the Klanten API over HTTP against an in-memory model.

Rules: create (with or without klantnummer, every subjectType and none), PUT, PATCH (a random subset of
fields, explicit nulls per DECISIONS #7), DELETE, writes to deleted klanten, and the list with random filters.
After every step:
* the unfiltered list equals the model (same urls, same values, creation order);
* each live klant's audit trail holds exactly one row per successful create/PUT/PATCH, in order, with the
  right `actie`, `wijzigingen.nieuw` equal to the response of that write and `oud` equal to the one before;
* the notification outbox (no relay: rows stay pending) holds one row per successful write
  (create/update/partial_update/destroy), in order per klant, with the klant's url and subjectType.

The model follows the documents: merge semantics (reference §3.10 + DECISIONS #7: explicit null removes adres,
subjectIdentificatie and its nested addresses; for a klant without subjectType there is nothing to remove),
`subjectIdentificatie: null` on create is 400 `null` (§3.1), subjectType immutability (§3.7 + DECISIONS #6),
uniqueness before the subject rule (§3.2 step 3, §3.6, DECISIONS #1/#2), and the subject rule (§3.5.1) checked
on the klant as it will be stored (README difference 16).
A write that fails changes nothing: no audit row, no outbox row.
"""
from __future__ import annotations

import copy
import json

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test

from conftest import Api, geldig_rsin, leeg_register
from storage.tables import notificatie

NP, NNP, VES = "natuurlijk_persoon", "niet_natuurlijk_persoon", "vestiging"
TYPES = (NP, NNP, VES)
BRONNEN = ("950428139", geldig_rsin(777))
KLANTNUMMERS = ("1", "2", "3", "K-9")
ACHTERNAMEN = ("", "Jansen", "de Vries")
POSTCODES = ("", "1234AB", "9999ZZ")
WEBSITES = ("http://some.website.com", "https://example.org/pad/1")
NRC_ONBEREIKBAAR = "http://127.0.0.1:9/api/v1/"   # never contacted: the relay is off

TEKSTVELDEN = ("bronorganisatie", "klantnummer", "bedrijfsnaam", "functie", "websiteUrl", "voornaam",
               "voorvoegselAchternaam", "achternaam", "telefoonnummer", "emailadres", "subject")
ADRES_LEEG = {"straatnaam": "", "huisnummer": None, "huisletter": "", "huisnummertoevoeging": "", "postcode": "",
              "woonplaatsnaam": "", "landcode": ""}
VERBLIJFSADRES_LEEG = {"aoaIdentificatie": "", "wplWoonplaatsNaam": "", "gorOpenbareRuimteNaam": "",
                       "aoaPostcode": "", "aoaHuisnummer": None, "aoaHuisletter": "", "aoaHuisnummertoevoeging": "",
                       "inpLocatiebeschrijving": ""}
BUITENLAND_LEEG = {"lndLandcode": "", "lndLandnaam": "", "subAdresBuitenland1": "", "subAdresBuitenland2": "",
                   "subAdresBuitenland3": ""}
GENEST = {"verblijfsadres": VERBLIJFSADRES_LEEG, "subVerblijfBuitenland": BUITENLAND_LEEG}
SID_LEEG = {
    NP: {"inpBsn": "", "anpIdentificatie": "", "inpANummer": "", "geslachtsnaam": "", "voorvoegselGeslachtsnaam": "",
         "voorletters": "", "voornamen": "", "geslachtsaanduiding": "", "geboortedatum": "", "verblijfsadres": None,
         "subVerblijfBuitenland": None},
    NNP: {"innNnpId": "", "annIdentificatie": "", "statutaireNaam": "", "innRechtsvorm": "", "bezoekadres": "",
          "subVerblijfBuitenland": None},
    VES: {"vestigingsNummer": "", "handelsnaam": [], "verblijfsadres": None, "subVerblijfBuitenland": None},
}
KLANT_LEEG = {**{k: "" for k in TEKSTVELDEN}, "adres": None, "subjectType": None, "subjectIdentificatie": None}

UNIEK = ("nonFieldErrors", "unique")
ONVERANDERLIJK = ("subjectType", "wijzigen-niet-toegelaten")
GEEN_SUBJECT = ("nonFieldErrors", "invalid-subject")

# ---------- strategies ----------
verblijfsadres = st.fixed_dictionaries(
    {"aoaIdentificatie": st.sampled_from(["1", "0363"]), "gorOpenbareRuimteNaam": st.sampled_from(["Dam", "Laan"])},
    optional={"aoaHuisnummer": st.one_of(st.none(), st.integers(0, 99999)),
              "aoaPostcode": st.sampled_from(["", "1000AA"])})
buitenland = st.fixed_dictionaries(
    {"lndLandcode": st.sampled_from(["6030", "5010"]), "lndLandnaam": st.sampled_from(["NL", "België"])},
    optional={"subAdresBuitenland1": st.sampled_from(["", "Rue 1"])})
genest = {"verblijfsadres": st.one_of(st.none(), verblijfsadres),
          "subVerblijfBuitenland": st.one_of(st.none(), buitenland)}
SID_STRATEGIE = {
    NP: st.fixed_dictionaries({}, optional={
        "geslachtsnaam": st.sampled_from(["", "Jansen", "Bakker"]), "inpBsn": st.sampled_from(["", geldig_rsin(12)]),
        "geslachtsaanduiding": st.sampled_from(["", "m", "v", "o"]), **genest}),
    NNP: st.fixed_dictionaries({}, optional={
        "statutaireNaam": st.sampled_from(["", "Stichting X"]), "innNnpId": st.sampled_from(["", geldig_rsin(13)]),
        "innRechtsvorm": st.sampled_from(["", "stichting", "rederij"]),
        "subVerblijfBuitenland": genest["subVerblijfBuitenland"]}),
    VES: st.fixed_dictionaries({}, optional={
        "vestigingsNummer": st.sampled_from(["", "123", "456"]),
        "handelsnaam": st.lists(st.sampled_from(["WB", "WB2", ""]), max_size=2), **genest}),
}
adres = st.fixed_dictionaries({}, optional={
    "postcode": st.sampled_from(POSTCODES), "huisnummer": st.one_of(st.none(), st.integers(0, 99999)),
    "straatnaam": st.sampled_from(["", "Dam", "Laan"])})


# ---------- the model ----------
def samenvoegen(bestaand: dict | None, gegeven: dict, leeg: dict) -> dict:
    """Given keys replace, omitted keys stay; nested addresses merge the same way; null removes (DECISIONS #7)."""
    uit = copy.deepcopy(bestaand) if bestaand is not None else copy.deepcopy(leeg)
    for k, w in gegeven.items():
        if k in GENEST and w is not None:
            uit[k] = samenvoegen(uit.get(k), w, GENEST[k])
        else:
            uit[k] = copy.deepcopy(w)
    return uit


def weergave(url: str, g: dict) -> dict:
    uit = {"url": url, **{k: g[k] for k in ("bronorganisatie", "klantnummer", "bedrijfsnaam", "functie", "websiteUrl",
                                            "voornaam", "voorvoegselAchternaam", "achternaam", "telefoonnummer",
                                            "emailadres", "adres", "subject", "subjectType")}}
    if g["subjectType"] is not None:
        uit["subjectIdentificatie"] = g["subjectIdentificatie"]
    return copy.deepcopy(uit)


def toepassen(oud: dict | None, body: dict) -> tuple[dict | None, list[tuple[str, str]]]:
    """The stored klant after a create (oud None) or PUT/PATCH of `body`, or the expected error (name, code)s."""
    nieuw = oud is None
    g = copy.deepcopy(KLANT_LEEG if nieuw else oud)
    if not nieuw and "subjectType" in body and body["subjectType"] != oud["subjectType"]:
        return None, [ONVERANDERLIJK]
    if nieuw and "subjectIdentificatie" in body and body["subjectIdentificatie"] is None:
        return None, [("subjectIdentificatie", "null")]       # §3.1: nothing to remove on create
    soort = body.get("subjectType") if nieuw else oud["subjectType"]
    for k in TEKSTVELDEN:
        if k in body:
            g[k] = body[k]
    if "adres" in body:
        g["adres"] = None if body["adres"] is None else samenvoegen(g["adres"], body["adres"], ADRES_LEEG)
    g["subjectType"] = soort
    if soort is not None and "subjectIdentificatie" in body:
        ruw = body["subjectIdentificatie"]
        if ruw is None:
            g["subjectIdentificatie"] = None
        else:
            eigen = {k: w for k, w in ruw.items() if k in SID_LEEG[soort]}   # another type's keys are ignored
            if eigen:
                g["subjectIdentificatie"] = samenvoegen(g["subjectIdentificatie"], eigen, SID_LEEG[soort])
    if soort is None:
        g["subjectIdentificatie"] = None
    # README difference 16: the subject rule (§3.5.1) is checked on the klant as it will be stored
    g["_subject_regel"] = bool(g["subject"] or g["subjectIdentificatie"])
    return g, []


class KlantenMachine(RuleBasedStateMachine):
    api: Api
    engine: sa.Engine
    subject_url: str

    def __init__(self):
        super().__init__()
        self.klanten: dict[str, dict] = {}          # url -> stored klant (model), in creation order
        self.audit: dict[str, list[tuple[str, dict]]] = {}   # url -> [(actie, nieuw)]
        self.berichten: dict[str, list[tuple[str, str | None]]] = {}   # url -> [(actie, subjectType)]
        self.verwijderd: list[str] = []

    @initialize()
    def leeg_register(self):
        leeg_register(self.engine)

    # ---------- helpers ----------
    def nummers(self, bron: str, behalve: str | None = None) -> set[str]:
        return {k["klantnummer"] for u, k in self.klanten.items() if k["bronorganisatie"] == bron and u != behalve}

    def verwacht_fout(self, resp, fouten: list[tuple[str, str]], context):
        assert resp.status_code == 400, (context, resp.status_code, resp.text)
        gekregen = [(p["name"], p["code"]) for p in resp.json()["invalidParams"]]
        assert gekregen == fouten, (context, resp.json())

    def kies_subject_id(self, data, soort: str | None):
        """Mostly a body for the klant's own type; sometimes another type's (its keys are ignored)."""
        if soort is None or data.draw(st.integers(0, 4)) == 0:
            soort = data.draw(st.sampled_from(TYPES))
        return data.draw(SID_STRATEGIE[soort])

    def schrijf(self, methode: str, url: str, body: dict):
        oud = self.klanten[url]
        g, fouten = toepassen(oud, body)
        if not fouten and (g["bronorganisatie"], g["klantnummer"]) != (oud["bronorganisatie"], oud["klantnummer"]) \
                and g["klantnummer"] in self.nummers(g["bronorganisatie"], behalve=url):
            fouten = [UNIEK]
        if not fouten and not g.pop("_subject_regel"):
            fouten = [GEEN_SUBJECT]
        resp = (self.api.put if methode == "PUT" else self.api.patch)(url, body)
        if fouten:
            self.verwacht_fout(resp, fouten, (methode, body, oud))
            return
        assert resp.status_code == 200, (methode, body, oud, resp.status_code, resp.text)
        verwacht = weergave(url, g)
        assert resp.json() == verwacht, (methode, body, oud)
        self.klanten[url] = g
        actie = "update" if methode == "PUT" else "partial_update"
        self.audit[url].append((actie, resp.json()))
        self.berichten[url].append((actie, g["subjectType"]))

    def body_velden(self, data) -> dict:
        return data.draw(st.fixed_dictionaries({}, optional={
            "achternaam": st.sampled_from(ACHTERNAMEN), "voornaam": st.sampled_from(["", "Anna", "Piet"]),
            "functie": st.sampled_from(["", "tester"]), "adres": st.one_of(adres, adres, st.none()),
            "subject": st.sampled_from(["", self.subject_url])}), label="velden")

    # ---------- rules ----------
    @rule(data=st.data())
    def aanmaken(self, data):
        bron = data.draw(st.sampled_from(BRONNEN), label="bron")
        body = {"bronorganisatie": bron, "websiteUrl": data.draw(st.sampled_from(WEBSITES))}
        klantnummer = data.draw(st.one_of(st.none(), st.sampled_from(KLANTNUMMERS)), label="klantnummer")
        if klantnummer is not None:
            body["klantnummer"] = klantnummer
        body.update(self.body_velden(data))
        soort = data.draw(st.sampled_from(["afwezig", None, *TYPES]), label="subjectType")
        if soort != "afwezig":
            body["subjectType"] = soort
        sid = data.draw(st.sampled_from(["weg", "object", "object", "object", "null"]), label="subjectIdentificatie")
        if sid == "object":
            body["subjectIdentificatie"] = self.kies_subject_id(data, soort if soort in TYPES else None)
        elif sid == "null":
            body["subjectIdentificatie"] = None
        if (soort not in TYPES or not body.get("subjectIdentificatie")) and data.draw(st.integers(0, 3)) > 0:
            body["subject"] = self.subject_url       # mostly a klant that can exist without identification
        g, fouten = toepassen(None, body)
        if not fouten and klantnummer is not None and klantnummer in self.nummers(bron):
            fouten = [UNIEK]                 # §3.2 step 3: uniqueness, then the subject rule
        if not fouten and not g.pop("_subject_regel"):
            fouten = [GEEN_SUBJECT]
        resp = self.api.post("/klanten", body)
        if fouten:
            self.verwacht_fout(resp, fouten, ("POST", body))
            return
        assert resp.status_code == 201, (body, resp.status_code, resp.text)
        gemaakt = resp.json()
        url = gemaakt["url"]
        if klantnummer is None:
            nummer = gemaakt["klantnummer"]
            assert 1 <= len(nummer) <= 8 and nummer not in self.nummers(bron), (nummer, self.nummers(bron))
            g["klantnummer"] = nummer
        assert gemaakt == weergave(url, g), body
        self.klanten[url] = g
        self.audit[url] = [("create", gemaakt)]
        self.berichten[url] = [("create", g["subjectType"])]

    @precondition(lambda self: self.klanten)
    @rule(data=st.data())
    def vervangen(self, data):
        url = data.draw(st.sampled_from(list(self.klanten)), label="klant")
        oud = self.klanten[url]
        body = {"bronorganisatie": data.draw(st.sampled_from([oud["bronorganisatie"], *BRONNEN])),
                "websiteUrl": data.draw(st.sampled_from(WEBSITES))}
        klantnummer = data.draw(st.one_of(st.none(), st.just(oud["klantnummer"]), st.sampled_from(KLANTNUMMERS)))
        if klantnummer is not None:
            body["klantnummer"] = klantnummer
        body.update(self.body_velden(data))
        body.update(self.subject_type_en_id(data, oud))
        self.schrijf("PUT", url, body)

    @precondition(lambda self: self.klanten)
    @rule(data=st.data())
    def bijwerken(self, data):
        url = data.draw(st.sampled_from(list(self.klanten)), label="klant")
        oud = self.klanten[url]
        body = data.draw(st.fixed_dictionaries({}, optional={
            "bronorganisatie": st.sampled_from(BRONNEN), "klantnummer": st.sampled_from(KLANTNUMMERS),
            "websiteUrl": st.sampled_from(WEBSITES)}), label="sleutels")
        body.update(self.body_velden(data))
        body.update(self.subject_type_en_id(data, oud))
        self.schrijf("PATCH", url, body)

    def subject_type_en_id(self, data, oud: dict) -> dict:
        uit = {}
        keuze = data.draw(st.sampled_from(["weg", "weg", "zelfde", "ander"]), label="subjectType")
        if keuze == "zelfde":
            uit["subjectType"] = oud["subjectType"]
        elif keuze == "ander":
            uit["subjectType"] = data.draw(st.sampled_from([t for t in (None, *TYPES) if t != oud["subjectType"]]))
        sid = data.draw(st.sampled_from(["weg", "weg", "object", "null"]), label="subjectIdentificatie")
        if sid == "object":
            uit["subjectIdentificatie"] = self.kies_subject_id(data, oud["subjectType"])
        elif sid == "null":
            uit["subjectIdentificatie"] = None
        return uit

    @precondition(lambda self: self.klanten)
    @rule(data=st.data())
    def adres_deels_bijwerken(self, data):
        """PATCH one address field: the other fields of a stored address stay (merge), null removes it."""
        url = data.draw(st.sampled_from(list(self.klanten)), label="klant")
        deel = data.draw(st.one_of(st.none(), adres.filter(lambda a: len(a) == 1)), label="adres")
        self.schrijf("PATCH", url, {"adres": deel})

    @precondition(lambda self: self.klanten)
    @rule(data=st.data())
    def verwijderen(self, data):
        url = data.draw(st.sampled_from(list(self.klanten)), label="klant")
        resp = self.api.delete(url)
        assert resp.status_code == 204, (resp.status_code, resp.text)
        assert resp.content == b""
        g = self.klanten.pop(url)
        del self.audit[url]
        self.berichten[url].append(("destroy", g["subjectType"]))
        self.verwijderd.append(url)
        assert self.api.get(f"{url}/audittrail").status_code == 404

    @precondition(lambda self: self.verwijderd)
    @rule(data=st.data())
    def schrijven_naar_verwijderde(self, data):
        url = data.draw(st.sampled_from(self.verwijderd), label="verwijderde klant")
        methode = data.draw(st.sampled_from(["GET", "PATCH", "PUT", "DELETE"]))
        body = {"bronorganisatie": BRONNEN[0], "websiteUrl": WEBSITES[0], "voornaam": "X"}
        resp = self.api.request(methode, url, json=None if methode in ("GET", "DELETE") else body)
        assert resp.status_code == 404, (methode, resp.status_code, resp.text)

    @rule(data=st.data())
    def zoeken(self, data):
        filters = data.draw(st.fixed_dictionaries({}, optional={
            "bronorganisatie": st.sampled_from(BRONNEN),
            "klantnummer": st.one_of(st.sampled_from(KLANTNUMMERS),
                                     st.sampled_from(sorted({k["klantnummer"] for k in self.klanten.values()})
                                                     or ["1"])),
            "achternaam": st.sampled_from(ACHTERNAMEN), "subjectType": st.sampled_from(TYPES),
            "adres__postcode": st.sampled_from(POSTCODES)}), label="filters")

        def past(g: dict) -> bool:
            for naam, w in filters.items():
                if w == "":
                    continue                     # an empty value is no filter (§7.1)
                if naam == "adres__postcode":
                    if g["adres"] is None or g["adres"]["postcode"] != w:
                        return False
                elif g[naam] != w:
                    return False
            return True

        verwacht = [weergave(u, g) for u, g in self.klanten.items() if past(g)]
        resp = self.api.get("/klanten", params=filters)
        assert resp.status_code == 200, (filters, resp.text)
        body = resp.json()
        assert body["count"] == len(verwacht), filters
        assert body["results"] == verwacht, filters

    # ---------- invariants ----------
    @invariant()
    def lijst_is_het_model(self):
        resp = self.api.get("/klanten")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(self.klanten)
        assert [k["url"] for k in body["results"]] == list(self.klanten)
        assert body["results"] == [weergave(u, g) for u, g in self.klanten.items()]

    @invariant()
    def audittrail_per_klant(self):
        for url, verwacht in self.audit.items():
            resp = self.api.get(f"{url}/audittrail")
            assert resp.status_code == 200, resp.text
            rijen = resp.json()
            assert [r["actie"] for r in rijen] == [a for a, _ in verwacht], url
            vorige = None
            for rij, (actie, nieuw) in zip(rijen, verwacht):
                assert rij["wijzigingen"]["nieuw"] == nieuw, (url, actie)
                assert rij["wijzigingen"]["oud"] == vorige, (url, actie)
                assert rij["resultaat"] == (201 if actie == "create" else 200)
                assert rij["hoofdObject"] == rij["resourceUrl"] == url
                bron = vorige or nieuw          # §6.2: from the pre-update object
                assert rij["resourceWeergave"] == f"{bron['bronorganisatie']} - {bron['klantnummer']}"
                vorige = nieuw

    @invariant()
    def outbox_per_klant(self):
        with self.engine.connect() as conn:
            rijen = conn.execute(sa.select(notificatie).order_by(notificatie.c.id)).all()
        gekregen: dict[str, list[tuple[str, str | None]]] = {}
        for rij in rijen:
            bericht = json.loads(rij.bericht)
            assert rij.status == "pending", rij
            assert bericht["kanaal"] == rij.kanaal == "klanten"
            assert bericht["resource"] == "klant"
            assert bericht["hoofdObject"] == bericht["resourceUrl"]
            assert bericht["hoofdObject"].endswith(str(rij.klant_uuid))
            gekregen.setdefault(bericht["hoofdObject"], []).append(
                (bericht["actie"], bericht["kenmerken"]["subjectType"]))
        verwacht = {u: b for u, b in self.berichten.items() if b}
        assert gekregen == verwacht


def test_klanten_state_machine(server_factory, engine, subject_url):
    srv = server_factory(notifications_api_url=NRC_ONBEREIKBAAR, notifications_relay=False)
    KlantenMachine.api = Api(srv.url)
    KlantenMachine.engine = engine
    KlantenMachine.subject_url = subject_url
    run_state_machine_as_test(KlantenMachine, settings=settings(
        max_examples=10, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much]))
