"""Handlers called through `Operatie` (klanten_api/operaties.py: connexion's per-request preparation done once
per operation) answer byte for byte what connexion's own FlaskOperation answers.

Two servers on the same database: ours, and a reference built the same way except that connexion's Flask app
keeps its stock FlaskOperation. Every request is sent to both; status, headers (but the per-request ones) and
body must be equal. Writes go to each server in turn on the same klant or contactmoment, so that both answers
describe the same object; creates are compared with the new uuid and klantnummer written as placeholders.
"""
from __future__ import annotations

import json
import re

import pytest

from cm_hulp import CM_BASE, CmApi, cm_body
from conftest import Api, klant_body, start_server, zonder_nummer
import klanten_api.operaties as operaties
from klanten_api.operaties import Operatie

PER_VERZOEK = {"date", "server", "x-request-id"}
INSTANCE = re.compile(r'"instance":"urn:uuid:[0-9a-f-]{36}"')


@pytest.fixture(scope="module")
def referentie(base_settings, engine):
    """The reference server: connexion's FlaskOperation, rebuilt on every request as connexion ships it."""
    mp = pytest.MonkeyPatch()
    mp.setattr(operaties, "installeer", lambda middleware_app: None)
    try:
        srv = start_server(base_settings, engine)
    finally:
        mp.undo()
    yield srv
    srv.stop()


class OpEenHost:
    """Both servers are asked under one Host name, so that the URLs they write (and the ETags over them) agree."""
    HOST = "klanten.test"

    def headers(self, extra=None, auth=True):
        return {"Host": self.HOST, **super().headers(extra, auth)}


class KlantenOpEenHost(OpEenHost, Api):
    pass


class CmOpEenHost(OpEenHost, CmApi):
    pass


@pytest.fixture
def beide(server, referentie):
    return KlantenOpEenHost(server.url), KlantenOpEenHost(referentie.url)


def _vorm(response, vervang: dict[str, str]) -> tuple:
    def norm(tekst: str) -> str:
        for oud, nieuw in vervang.items():
            tekst = tekst.replace(oud, nieuw)
        return INSTANCE.sub('"instance":"urn:uuid:…"', tekst)     # a new one for every error
    headers = sorted((k.lower(), norm(v)) for k, v in response.headers.items() if k.lower() not in PER_VERZOEK)
    return response.status_code, headers, norm(response.content.decode("utf-8", "replace"))


def uuid_van(response) -> str:
    return response.json()["url"].rsplit("/", 1)[1]


def gelijk(ons, ref, vervang_ons=None, vervang_ref=None):
    a, b = _vorm(ons, vervang_ons or {}), _vorm(ref, vervang_ref or {})
    assert a == b, f"{ons.request.method} {ons.request.url}:\nours {a}\nreference {b}"
    return ons


def beide_vragen(beide, methode, pad, **kw):
    ons, ref = beide
    return gelijk(ons.request(methode, pad, **kw), ref.request(methode, pad, **kw))


def test_the_reference_really_is_connexions_own_operation(server, referentie):
    """Otherwise every comparison below compares our path with itself."""
    def klassen(srv):
        Api(srv.url).get("/klanten")         # connexion adds the APIs to Flask when its stack is built
        flask_app = srv.app.connexion_app.app
        return {type(flask_app.view_functions[e]) for e in flask_app.view_functions if e.endswith("klant_read")}
    assert klassen(server) == {Operatie}
    assert Operatie not in klassen(referentie) and klassen(referentie)


def test_klant_reads_and_errors_are_identical(beide):
    ons, _ = beide
    uuids = []
    for i, extra in enumerate([{}, {"adres": {"straatnaam": "Kerkstraat", "huisnummer": 3, "postcode": "1234AB",
                                              "woonplaatsnaam": "Utrecht", "landcode": "6030"},
                                    "emailadres": "a@example.org", "telefoonnummer": "0612345678"},
                               {"subjectType": "vestiging", "subjectIdentificatie": {"handelsnaam": ["Bakker"]}}]):
        r = ons.post("/klanten", json=klant_body(klantnummer=f"{700 + i}", **extra))
        assert r.status_code == 201, r.text
        uuids.append(uuid_van(r))
    for u in uuids:
        beide_vragen(beide, "GET", f"/klanten/{u}")
        beide_vragen(beide, "HEAD", f"/klanten/{u}")
        etag = ons.get(f"/klanten/{u}").headers["ETag"]
        beide_vragen(beide, "GET", f"/klanten/{u}", headers={"If-None-Match": etag})
        beide_vragen(beide, "GET", f"/klanten/{u}/audittrail")
        audit = ons.get(f"/klanten/{u}/audittrail").json()[0]["uuid"]
        beide_vragen(beide, "GET", f"/klanten/{u}/audittrail/{audit}")
    for pad in ["/klanten", "/klanten?page=1", "/klanten?page=2", "/klanten?klantnummer=701",
                "/klanten?subjectType=vestiging", "/klanten?subjectNatuurlijkPersoon__inpBsn=999990019",
                "/klanten?page=0", "/klanten?page=abc", "/klanten?subjectType=onbekend", "/klanten?onbekend=1",
                "/klanten/00000000-0000-4000-8000-000000000000", "/klanten/geen-uuid",
                "/klanten/00000000-0000-4000-8000-000000000000/audittrail", f"/klanten/{uuids[0]}/audittrail/x"]:
        beide_vragen(beide, "GET", pad)
    beide_vragen(beide, "GET", f"/klanten/{uuids[0]}", headers={"Accept": "text/html"})
    beide_vragen(beide, "GET", f"/klanten/{uuids[0]}", auth=False)
    beide_vragen(beide, "GET", f"/klanten/{uuids[0]}", headers={"Authorization": "Bearer x.y.z"})
    beide_vragen(beide, "POST", f"/klanten/{uuids[0]}")
    # a read with a form body: connexion parses it although nothing uses it (and Flask limits what it holds)
    for deel in (b"kort", b"x" * 600_000):
        vorm = b"--grens\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + deel + b"\r\n--grens--\r\n"
        beide_vragen(beide, "GET", f"/klanten/{uuids[0]}", data=vorm,
                     headers={"Content-Type": "multipart/form-data; boundary=grens"})


def test_klant_writes_are_identical(beide):
    ons, ref = beide
    # creates: the same body to each but for the klantnummer (of one length), compared with placeholders
    a, b = ons.post("/klanten", json=klant_body(klantnummer="801")), ref.post("/klanten", json=klant_body(klantnummer="802"))
    assert a.status_code == b.status_code == 201
    gelijk(a, b, {uuid_van(a): "UUID", '"klantnummer":"801"': "NR"}, {uuid_van(b): "UUID", '"klantnummer":"802"': "NR"})
    # kla-001: a generated number
    a, b = ons.post("/klanten", json=zonder_nummer()), ref.post("/klanten", json=zonder_nummer())
    assert a.status_code == b.status_code == 201
    assert len(a.json()["klantnummer"]) == len(b.json()["klantnummer"])
    nr = '"klantnummer":"{}"'.format
    gelijk(a, b, {uuid_van(a): "UUID", nr(a.json()["klantnummer"]): "NR"},
           {uuid_van(b): "UUID", nr(b.json()["klantnummer"]): "NR"})
    u = uuid_van(a)
    # updates: each server in turn writes the same thing on the same klant, so both describe one version
    for methode, body in [("PATCH", {"functie": "Wethouder"}), ("PATCH", {}),
                          ("PUT", klant_body(klantnummer=a.json()["klantnummer"], functie="Raadslid")),
                          ("PATCH", {"adres": {"straatnaam": "Dorpsstraat", "huisnummer": 1}})]:
        r_ons = ons.request(methode, f"/klanten/{u}", json=body)
        r_ref = ref.request(methode, f"/klanten/{u}", json=body)
        assert r_ons.status_code == 200, r_ons.text
        gelijk(r_ons, r_ref)
    # what is refused, with every kind of body
    for methode, pad in [("POST", "/klanten"), ("PUT", f"/klanten/{u}"), ("PATCH", f"/klanten/{u}")]:
        for data, ctype in [(b"null", "application/json"), (b"[]", "application/json"), (b"{", "application/json"),
                            (b'{"bronorganisatie": 5}', "application/json"), (b"", "application/json"),
                            (b"a=b", "application/x-www-form-urlencoded"), (b"<x/>", "application/xml"),
                            (json.dumps({"functie": "x" * 300}).encode(), "application/json; charset=utf-8")]:
            beide_vragen(beide, methode, pad, data=data, headers={"Content-Type": ctype})
    beide_vragen(beide, "PATCH", f"/klanten/{u}", json={"functie": "x"}, headers={"If-Match": '"oud"'})
    beide_vragen(beide, "PATCH", "/klanten/00000000-0000-4000-8000-000000000000", json={"functie": "x"})
    # deletes: one klant each
    tweede = uuid_van(ons.post("/klanten", json=zonder_nummer()))
    gelijk(ons.delete(f"/klanten/{u}"), ref.delete(f"/klanten/{tweede}"))
    beide_vragen(beide, "DELETE", f"/klanten/{u}")


def test_contactmomenten_are_identical(server, referentie):
    ons, ref = CmOpEenHost(server.url), CmOpEenHost(referentie.url)
    beide = (ons, ref)
    a, b = ons.post("/contactmomenten", json=cm_body()), ref.post("/contactmomenten", json=cm_body())
    assert a.status_code == b.status_code == 201, a.text
    gelijk(a, b, {uuid_van(a): "UUID", a.json()["registratiedatum"]: "DATUM"},
           {uuid_van(b): "UUID", b.json()["registratiedatum"]: "DATUM"})
    u = uuid_van(a)
    for pad in [f"/contactmomenten/{u}", "/contactmomenten", f"/contactmomenten?bronorganisatie={cm_body()['bronorganisatie']}",
                f"/contactmomenten/{u}/audittrail", "/klantcontactmomenten", "/objectcontactmomenten",
                "/contactmomenten/00000000-0000-4000-8000-000000000000", "/contactmomenten?page=9"]:
        beide_vragen(beide, "GET", pad)
    for methode, body in [("PATCH", {"tekst": "Teruggebeld"}), ("PUT", cm_body(tekst="Opnieuw"))]:
        gelijk(ons.request(methode, f"/contactmomenten/{u}", json=body),
               ref.request(methode, f"/contactmomenten/{u}", json=body))
    beide_vragen(beide, "POST", "/contactmomenten", json={"kanaal": 5})
    beide_vragen(beide, "POST", "/klantcontactmomenten", json={"contactmoment": "http://x", "rol": "x"})
    tweede = uuid_van(ons.post("/contactmomenten", json=cm_body()))
    gelijk(ons.delete(f"/contactmomenten/{u}"), ref.delete(f"/contactmomenten/{tweede}"))
    assert CM_BASE in ons.root
