"""The contactmoment's audit trail (bron cmc, written in the write's transaction), ETag / HEAD / 304 on every
*_read of the Contactmomenten API, and If-Match on contactmoment writes (DECISIONS #24, #27)."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from cm_hulp import BRON, CmApi, cm_body
from storage.tables import audittrail, contactmoment_audittrail


@pytest.fixture
def cm(server) -> CmApi:
    return CmApi(server.url)


def test_audit_rows_of_create_update_partial_update(cm, engine):
    a = cm.post("/contactmomenten", cm_body(medewerker="https://m.example.com/medewerkers/200"),
                headers={"X-Audit-Toelichting": "eerste contact"}).json()
    cm.put(a["url"], {"bronorganisatie": BRON, "kanaal": "email"})
    cm.patch(a["url"], {})
    regels = cm.get(f"{a['url']}/audittrail").json()
    assert [r["actie"] for r in regels] == ["create", "update", "partial_update"]
    assert [r["actieWeergave"] for r in regels] == ["Object aangemaakt", "Object bijgewerkt",
                                                    "Object deels bijgewerkt"]
    eerste = regels[0]
    assert list(eerste) == ["uuid", "bron", "applicatieId", "applicatieWeergave", "gebruikersId",
                            "gebruikersWeergave", "actie", "actieWeergave", "resultaat", "hoofdObject", "resource",
                            "resourceUrl", "toelichting", "resourceWeergave", "aanmaakdatum", "wijzigingen"]
    datum = a["registratiedatum"].replace("T", " ").replace("Z", "+00:00")
    assert {k: eerste[k] for k in ("bron", "applicatieId", "applicatieWeergave", "gebruikersId", "gebruikersWeergave",
                                   "resultaat", "hoofdObject", "resource", "resourceUrl", "toelichting",
                                   "resourceWeergave", "wijzigingen")} == {
        "bron": "cmc", "applicatieId": "alles", "applicatieWeergave": "Alles app", "gebruikersId": "test-gebruiker",
        "gebruikersWeergave": "Test Gebruiker", "resultaat": 201, "hoofdObject": a["url"], "resource": "contactmoment",
        "resourceUrl": a["url"], "toelichting": "eerste contact",
        "resourceWeergave": f"{BRON} 200 at {datum} via telefoon",
        "wijzigingen": {"oud": None, "nieuw": a}}
    assert regels[1]["resultaat"] == 200 and regels[1]["wijzigingen"]["oud"] == a
    assert regels[1]["wijzigingen"]["nieuw"]["kanaal"] == "email"
    assert cm.get(f"{a['url']}/audittrail/{eerste['uuid']}").json() == eerste
    # the klant audit table is not touched
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audittrail)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(contactmoment_audittrail)).scalar_one() == 3


def test_no_audit_row_for_a_refused_write_or_a_read(cm):
    a = cm.post("/contactmomenten", cm_body()).json()
    assert cm.patch(a["url"], {"kanaal": "x" * 51}).status_code == 400
    cm.get(a["url"])
    assert len(cm.get(f"{a['url']}/audittrail").json()) == 1


def test_resource_weergave_over_200_characters_is_cut(cm):
    """The reference answers 500 and writes nothing (DECISIONS #20)."""
    a = cm.post("/contactmomenten", cm_body(medewerker="https://m.example.com/" + "m" * 190)).json()
    regel = cm.get(f"{a['url']}/audittrail").json()[0]
    assert len(regel["resourceWeergave"]) == 200 and regel["resourceWeergave"].startswith(f"{BRON} mmm")


def test_audittrail_404s(cm):
    a = cm.post("/contactmomenten", cm_body()).json()
    b = cm.post("/contactmomenten", cm_body()).json()
    regel = cm.get(f"{a['url']}/audittrail").json()[0]
    assert cm.get(f"{b['url']}/audittrail/{regel['uuid']}").status_code == 404      # under another contactmoment
    assert cm.get(f"/contactmomenten/{uuid.uuid4()}/audittrail").status_code == 404
    assert cm.get(f"{a['url']}/audittrail/{uuid.uuid4()}").status_code == 404
    assert cm.delete(a["url"]).status_code == 204
    assert cm.get(f"{a['url']}/audittrail").status_code == 404


def test_etag_head_and_304_on_every_read(cm, server, engine):
    a = cm.post("/contactmomenten", cm_body()).json()
    regel = cm.get(f"{a['url']}/audittrail").json()[0]
    with engine.begin() as conn:      # relations straight into the database: this test is about the HTTP layer
        cm_id = conn.execute(sa.text("SELECT id FROM contactmoment")).scalar_one()
        k, o = uuid.uuid4(), uuid.uuid4()
        conn.execute(sa.text("INSERT INTO klantcontactmoment (uuid, contactmoment_id, klant, klant_sleutel, rol) "
                             "VALUES (:u, :c, 'https://k.example.com/1', 'x', 'belanghebbende')"),
                     {"u": k.hex if engine.dialect.name == "sqlite" else k, "c": cm_id})
        conn.execute(sa.text("INSERT INTO objectcontactmoment (uuid, contactmoment_id, object, object_sleutel, "
                             "object_type) VALUES (:u, :c, 'https://z.example.com/1', 'y', 'zaak')"),
                     {"u": o.hex if engine.dialect.name == "sqlite" else o, "c": cm_id})
    for url in (a["url"], f"{a['url']}/audittrail/{regel['uuid']}", f"/klantcontactmomenten/{k}",
                f"/objectcontactmomenten/{o}"):
        r = cm.get(url)
        assert r.status_code == 200, (url, r.text)
        etag = r.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        h = cm.request("HEAD", url)
        assert h.status_code == 200 and h.content == b"" and h.headers["ETag"] == etag
        n = cm.get(url, headers={"If-None-Match": etag})
        assert n.status_code == 304 and n.content == b"" and n.headers["ETag"] == etag
        assert cm.get(url, headers={"If-None-Match": f'W/{etag}, "ander"'}).status_code == 304
        assert cm.get(url, headers={"If-None-Match": '"ander"'}).status_code == 200
    # a list has no ETag; a change makes a new one
    assert "ETag" not in cm.get("/contactmomenten").headers
    oud = cm.get(a["url"]).headers["ETag"]
    nieuw = cm.patch(a["url"], {"tekst": "anders"})
    assert nieuw.headers["ETag"] != oud and nieuw.headers["ETag"] == cm.get(a["url"]).headers["ETag"]


def test_if_match_on_contactmoment_writes(cm):
    a = cm.post("/contactmomenten", cm_body()).json()
    etag = cm.get(a["url"]).headers["ETag"]
    r = cm.patch(a["url"], {"tekst": "x"}, headers={"If-Match": '"oud"'})
    assert r.status_code == 412 and r.json()["code"] == "precondition_failed"
    assert "contactmoment" in r.json()["detail"]
    assert cm.delete(a["url"], headers={"If-Match": '"oud"'}).status_code == 412
    assert len(cm.get(f"{a['url']}/audittrail").json()) == 1           # nothing written
    r = cm.patch(a["url"], {"tekst": "x"}, headers={"If-Match": etag})
    assert r.status_code == 200
    assert cm.put(a["url"], {"bronorganisatie": BRON}, headers={"If-Match": etag}).status_code == 412
    assert cm.delete(a["url"], headers={"If-Match": r.headers["ETag"]}).status_code == 204
