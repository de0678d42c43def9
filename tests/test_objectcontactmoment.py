"""objectcontactmoment (cm-005, cm-006) against a loopback Zaken API: the zaak fetched with the credentials of a
configured service and its shape checked, the mirror lookup on create and delete, (contactmoment, object) unique,
and never a 500 for what the Zaken API answers (DECISIONS #20, #23)."""
from __future__ import annotations

import json
import uuid

import jwt
import pytest
import yaml
from werkzeug import Response

from cm_hulp import CmApi, cm_body, fout, invalid_params

ZRC_SECRET = "zrc-secret-for-the-contactmomenten-test-suite"
ZAAK = {"url": "x", "bronorganisatie": "000000000", "zaaktype": "https://ztc.example.com/zaaktypen/1",
        "verantwoordelijkeOrganisatie": "000000000", "startdatum": "2020-01-01"}


class ZakenApi:
    """A Zaken API on loopback: zaken by uuid, and zaakcontactmomenten it holds (zaak, contactmoment)."""

    def __init__(self, httpserver):
        self.server = httpserver
        self.relaties: set[tuple[str, str]] = set()
        self.lookup_status = 200
        self.zaken = {"goed": ZAAK, "vreemd": {"naam": "geen zaak"}}
        httpserver.expect_request("/zaken/api/v1/zaakcontactmomenten").respond_with_handler(self._lookup)
        for naam in ("goed", "vreemd", "weg"):
            httpserver.expect_request(f"/zaken/api/v1/zaken/{naam}").respond_with_handler(self._zaak)

    def url(self, naam: str) -> str:
        return self.server.url_for(f"/zaken/api/v1/zaken/{naam}")

    @staticmethod
    def _geautoriseerd(request) -> bool:
        try:
            return jwt.decode(request.headers.get("Authorization", "").removeprefix("Bearer "), ZRC_SECRET,
                              algorithms=["HS256"])["client_id"] == "cmc-client"
        except jwt.PyJWTError:
            return False

    def _zaak(self, request):
        if not self._geautoriseerd(request):
            return Response("{}", status=403, content_type="application/json")
        zaak = self.zaken.get(request.path.rsplit("/", 1)[1])
        return Response(json.dumps(zaak), status=200 if zaak else 404, content_type="application/json")

    def _lookup(self, request):
        if not self._geautoriseerd(request):
            return Response("{}", status=403, content_type="application/json")
        if self.lookup_status != 200:
            return Response('{"err": 1}', status=self.lookup_status, content_type="application/json")
        paar = (request.args.get("zaak"), request.args.get("contactmoment"))
        return Response(json.dumps([{"url": "zcm", "zaak": paar[0], "contactmoment": paar[1]}] if paar in
                                   self.relaties else []), content_type="application/json")

    def lookups(self) -> list:
        return [req for req, _ in self.server.log if req.path.endswith("/zaakcontactmomenten")]


@pytest.fixture
def zrc(httpserver) -> ZakenApi:
    return ZakenApi(httpserver)


@pytest.fixture
def cm(server_factory, zrc, tmp_path) -> CmApi:
    pad = tmp_path / "diensten.yaml"
    pad.write_text(yaml.safe_dump({"diensten": [{"apiRoot": zrc.server.url_for("/zaken/api/v1/"),
                                                 "clientId": "cmc-client", "secret": ZRC_SECRET}]}))
    return CmApi(server_factory(services_config=pad).url)


@pytest.fixture
def contactmoment(cm) -> dict:
    return cm.post("/contactmomenten", cm_body()).json()


def test_create_read_list_delete(cm, zrc, contactmoment):
    zaak = zrc.url("goed")
    zrc.relaties.add((zaak, contactmoment["url"]))
    r = cm.post("/objectcontactmomenten", {"contactmoment": contactmoment["url"], "object": zaak, "objectType": "zaak"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert list(body) == ["url", "contactmoment", "object", "objectType"]
    assert body == {"url": r.headers["Location"], "contactmoment": contactmoment["url"], "object": zaak,
                    "objectType": "zaak"}
    lookup = zrc.lookups()[-1]
    assert lookup.args["contactmoment"] == contactmoment["url"] and lookup.args["zaak"] == zaak
    assert cm.get(body["url"]).json() == body
    assert cm.get("/objectcontactmomenten", params={"object": zaak, "objectType": "zaak"}).json()["results"] == [body]
    assert cm.get("/objectcontactmomenten?objectType=besluit").status_code == 400
    # cm-006 on delete: while the Zaken API holds its relation, ours stays
    assert invalid_params(cm.delete(body["url"])) == [fout(
        "nonFieldErrors", "remote-relation-exists",
        "The canonical remote relation still exists, this relation cannot be deleted.")]
    zrc.relaties.clear()
    assert cm.delete(body["url"]).status_code == 204
    assert cm.get(body["url"]).status_code == 404


def test_cm_005_and_cm_006_refusals(cm, zrc, contactmoment):
    def maak(object_, **kw):
        return cm.post("/objectcontactmomenten", {"contactmoment": contactmoment["url"], "object": object_,
                                                  "objectType": "zaak", **kw})
    weg, vreemd, goed = zrc.url("weg"), zrc.url("vreemd"), zrc.url("goed")
    assert invalid_params(maak(weg)) == [fout("object", "bad-url",
                                              f"De URL {weg} gaf als antwoord HTTP 404. Geef een geldige URL op.")]
    assert invalid_params(maak(vreemd)) == [fout(
        "object", "invalid-resource", f"De URL {vreemd} resource lijkt niet op een `Zaak`. Geef een validate URL op.")]
    assert invalid_params(maak(goed)) == [fout("nonFieldErrors", "inconsistent-relation",
                                               "The contactmoment has no relations to zaak")]
    assert invalid_params(maak(goed, contactmoment="http://mock/404", objectType="besluit")) == [
        fout("contactmoment", "no_match", "Ongeldige hyperlink - Geen overeenkomende URL."),
        fout("objectType", "invalid_choice", '"besluit" is een ongeldige keuze.')]
    zrc.lookup_status = 400                       # the reference: invalidParams from the remote body
    assert invalid_params(maak(goed))[0]["code"] == "relation-validation-error"
    zrc.lookup_status = 500                       # the reference: 500
    r = maak(goed)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert cm.get("/objectcontactmomenten").json()["count"] == 0


def test_duplicate_is_400(cm, zrc, contactmoment):
    """The reference answers 500 (DECISIONS #20)."""
    zaak = zrc.url("goed")
    zrc.relaties.add((zaak, contactmoment["url"]))
    body = {"contactmoment": contactmoment["url"], "object": zaak, "objectType": "zaak"}
    assert cm.post("/objectcontactmomenten", body).status_code == 201
    assert invalid_params(cm.post("/objectcontactmomenten", body)) == [fout(
        "nonFieldErrors", "unique", "De velden contactmoment, object moeten een unieke set zijn.")]


def test_a_lookup_error_on_delete_is_400_or_503(cm, zrc, contactmoment):
    zaak = zrc.url("goed")
    zrc.relaties.add((zaak, contactmoment["url"]))
    r = cm.post("/objectcontactmomenten", {"contactmoment": contactmoment["url"], "object": zaak,
                                           "objectType": "zaak"}).json()
    zrc.lookup_status = 403
    assert invalid_params(cm.delete(r["url"]))[0]["code"] == "relation-lookup-error"
    zrc.lookup_status = 502
    assert cm.delete(r["url"]).status_code == 503
    assert cm.get(r["url"]).status_code == 200


def test_the_mirror_check_can_be_switched_off(server_factory, zrc, tmp_path):
    pad = tmp_path / "diensten.yaml"
    pad.write_text(yaml.safe_dump({"diensten": [{"apiRoot": zrc.server.url_for("/zaken/api/v1/"),
                                                 "clientId": "cmc-client", "secret": ZRC_SECRET}]}))
    cm = CmApi(server_factory(services_config=pad, cm_zaak_relatie_controle=False).url)
    contactmoment = cm.post("/contactmomenten", cm_body()).json()
    r = cm.post("/objectcontactmomenten", {"contactmoment": contactmoment["url"], "object": zrc.url("goed"),
                                           "objectType": "zaak"})
    assert r.status_code == 201
    assert cm.delete(r.json()["url"]).status_code == 204
    assert zrc.lookups() == []


def test_unknown_uuid_is_404(cm):
    assert cm.get(f"/objectcontactmomenten/{uuid.uuid4()}").status_code == 404
    assert cm.delete(f"/objectcontactmomenten/{uuid.uuid4()}").status_code == 404
