"""Contactmoment notifications on kanaal `contactmomenten` through the outbox and relay (DECISIONS #24, #8);
the relations send none."""
from __future__ import annotations

import json

import sqlalchemy as sa

from cm_hulp import BRON, CmApi, cm_body
from conftest import wait_for
from storage.tables import notificatie
from test_notificaties import nrc, nrc_settings, outbox  # noqa: F401 - the loopback Notificaties API fixture


def test_every_contactmoment_write_sends_the_reference_message(server_factory, nrc, engine):  # noqa: F811
    srv = server_factory(**nrc_settings(nrc.url_for("/api/v1/")))
    cm = CmApi(srv.url)
    a = cm.post("/contactmomenten", cm_body(kanaal="email")).json()
    url = a["url"]
    assert cm.patch(url, {"kanaal": "balie"}).status_code == 200
    assert cm.put(url, {"bronorganisatie": BRON, "kanaal": ""}).status_code == 200
    audit = cm.get(f"{url}/audittrail").json()
    assert cm.delete(url).status_code == 204
    ontvangen = wait_for(lambda: (r := [req for req, _ in nrc.log if req.path == "/api/v1/notificaties"])
                         and len(r) == 4 and r, wat="four notifications")
    for i, (req, actie, kanaal) in enumerate(zip(ontvangen, ["create", "partial_update", "update", "destroy"],
                                                 ["email", "balie", "", ""])):
        body = req.get_data(as_text=True)
        stamp = audit[i]["aanmaakdatum"] if i < 3 else json.loads(body)["aanmaakdatum"]
        assert body == json.dumps({"kanaal": "contactmomenten", "hoofdObject": url, "resource": "contactmoment",
                                   "resourceUrl": url, "actie": actie, "aanmaakdatum": stamp,
                                   "kenmerken": {"bronorganisatie": BRON, "kanaal": kanaal}})
    rows = wait_for(lambda: (o := outbox(engine)) and all(r.status == "sent" for r in o) and o)
    assert {r.kanaal for r in rows} == {"contactmomenten"}
    assert {str(r.klant_uuid) for r in rows} == {url.rsplit("/", 1)[1]}      # ordered per contactmoment


def test_a_refused_write_and_the_relations_queue_nothing(server_factory, nrc, engine):  # noqa: F811
    srv = server_factory(**nrc_settings(nrc.url_for("/api/v1/")), notifications_relay=False)
    cm = CmApi(srv.url)
    assert cm.post("/contactmomenten", {"bronorganisatie": BRON}).status_code == 400
    a = cm.post("/contactmomenten", cm_body()).json()
    assert cm.post("/klantcontactmomenten", {"contactmoment": a["url"], "klant": "x", "rol": "x"}).status_code == 400
    with engine.connect() as conn:
        rows = conn.execute(sa.select(notificatie.c.kanaal, notificatie.c.bericht)).all()
    assert len(rows) == 1 and json.loads(rows[0].bericht)["actie"] == "create"


