"""GET /contactmomenten: filters, ordering (comma lists), paging and unknown parameters (DECISIONS #25)."""
from __future__ import annotations

import pytest

from cm_hulp import BRON, CmApi, cm_body, fout, invalid_params


@pytest.fixture
def cm(server) -> CmApi:
    return CmApi(server.url)


def maak(cm, **kw):
    r = cm.post("/contactmomenten", cm_body(**kw))
    assert r.status_code == 201, r.text
    return r.json()


def urls(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [c["url"] for c in r.json()["results"]]


def test_filters(cm, server):
    a = maak(cm, kanaal="email", voorkeurskanaal="post", voorkeurstaal="nld", initiatiefnemer="klant",
             registratiedatum="2020-01-01T10:00:00Z", medewerker="https://m.example.com/1")
    b = maak(cm, kanaal="balie", registratiedatum="2021-06-01T10:00:00+02:00", vorigContactmoment=a["url"],
             bronorganisatie="950428139")
    assert urls(cm.get("/contactmomenten?kanaal=email")) == [a["url"]]
    assert urls(cm.get("/contactmomenten?kanaal=Email")) == []                         # case-sensitive
    assert urls(cm.get("/contactmomenten?voorkeurskanaal=post&voorkeurstaal=nld")) == [a["url"]]
    assert urls(cm.get("/contactmomenten?initiatiefnemer=klant")) == [a["url"]]
    assert urls(cm.get("/contactmomenten?bronorganisatie=950428139")) == [b["url"]]
    assert urls(cm.get("/contactmomenten", params={"medewerker": "https://m.example.com/1"})) == [a["url"]]
    assert urls(cm.get("/contactmomenten?registratiedatum__gt=2020-01-01T10:00:00")) == [b["url"]]
    assert urls(cm.get("/contactmomenten?registratiedatum__gte=2020-01-01T10:00:00")) == [a["url"], b["url"]]
    assert urls(cm.get("/contactmomenten?registratiedatum__lt=2021-06-01T08:00:00Z")) == [a["url"]]
    assert urls(cm.get("/contactmomenten", params={"registratiedatum__lte": "2021-06-01T10:00:00+02:00"})) == [
        a["url"], b["url"]]
    assert urls(cm.get("/contactmomenten?registratiedatum=2020-01-01 10:00")) == [a["url"]]
    assert urls(cm.get("/contactmomenten", params={"vorigContactmoment": a["url"]})) == [b["url"]]
    assert urls(cm.get("/contactmomenten", params={"volgendContactmoment": b["url"]})) == [a["url"]]
    # another host, or not one of ours: nothing (as the reference)
    ander = a["url"].replace("127.0.0.1", "localhost")
    assert urls(cm.get("/contactmomenten", params={"vorigContactmoment": ander})) == []
    assert urls(cm.get("/contactmomenten", params={"volgendContactmoment": "https://example.com"})) == []
    # empty values are no filter
    assert len(urls(cm.get("/contactmomenten?kanaal=&voorkeurstaal=&initiatiefnemer="))) == 2


def test_filter_errors(cm):
    r = cm.get("/contactmomenten?vorigContactmoment=/contactmomenten/api/v1/contactmomenten/x&bronorganisatie=123"
               "&registratiedatum__lt=2020-01-01&initiatiefnemer=foo&medewerker=geen&ordering=onderwerpLinks")
    assert invalid_params(r) == [
        fout("vorigContactmoment", "invalid", "Voer een geldige URL in."),
        fout("bronorganisatie", "invalid-length", "RSIN moet 9 tekens lang zijn."),
        fout("registratiedatum__lt", "invalid", "Voer een geldige datum/tijd in."),
        fout("initiatiefnemer", "invalid_choice", "Selecteer een geldige keuze. foo is geen beschikbare keuze."),
        fout("medewerker", "invalid", "Voer een geldige URL in."),
        fout("ordering", "invalid_choice", "Selecteer een geldige keuze. onderwerpLinks is geen beschikbare keuze."),
    ]


def test_unknown_parameters_are_400(cm):
    for query, namen in (("foo=1&zzz=2", "foo, zzz"), ("vorig_contactmoment=x", "vorig_contactmoment"),
                         ("klant=x&expand=objectcontactmomenten", "klant, expand"), ("pageSize=5", "pageSize")):
        assert invalid_params(cm.get(f"/contactmomenten?{query}")) == [
            fout("nonFieldErrors", "unknown-parameters", f"Onbekende query parameters: {namen}")]
    assert invalid_params(cm.get("/klantcontactmomenten?object=x")) == [
        fout("nonFieldErrors", "unknown-parameters", "Onbekende query parameters: object")]
    assert invalid_params(cm.get("/objectcontactmomenten?object_type=zaak")) == [
        fout("nonFieldErrors", "unknown-parameters", "Onbekende query parameters: object_type")]


def test_ordering(cm):
    a = maak(cm, kanaal="b", registratiedatum="2020-01-03T00:00:00Z", tekst="z")
    b = maak(cm, kanaal="a", registratiedatum="2020-01-01T00:00:00Z", tekst="y",
             medewerkerIdentificatie={"identificatie": "zz"})
    c = maak(cm, kanaal="a", registratiedatum="2020-01-02T00:00:00Z", tekst="x", medewerker="https://m.example.com",
             medewerkerIdentificatie=None)
    assert urls(cm.get("/contactmomenten")) == [a["url"], b["url"], c["url"]]          # creation order
    assert urls(cm.get("/contactmomenten?ordering=kanaal,-registratiedatum")) == [c["url"], b["url"], a["url"]]
    assert urls(cm.get("/contactmomenten?ordering=-kanaal, registratiedatum")) == [a["url"], b["url"], c["url"]]
    assert urls(cm.get("/contactmomenten?ordering=tekst")) == [c["url"], b["url"], a["url"]]
    assert urls(cm.get("/contactmomenten?ordering=medewerker_identificatie")) == [a["url"], b["url"], c["url"]]
    assert urls(cm.get("/contactmomenten?ordering=-medewerker_identificatie")) == [c["url"], b["url"], a["url"]]
    op_uuid = sorted([a["url"], b["url"], c["url"]], key=lambda u: u.rsplit("/", 1)[1])
    assert urls(cm.get("/contactmomenten?ordering=url")) == op_uuid              # the reference: 500
    assert urls(cm.get("/contactmomenten?ordering=-url")) == op_uuid[::-1]
    assert urls(cm.get("/contactmomenten?ordering=klant")) == [a["url"], b["url"], c["url"]]   # the reference: 500
    for naam in ("bronorganisatie", "voorkeurskanaal", "onderwerp_links", "initiatiefnemer", "medewerker"):
        assert len(urls(cm.get(f"/contactmomenten?ordering=-{naam}"))) == 3


def test_paging(cm, engine):
    import datetime as dt
    import uuid

    import sqlalchemy as sa

    from storage.contactmomenten import naar_kolommen
    from storage.tables import contactmoment
    nu = dt.datetime.now(dt.timezone.utc)
    g = {"bronorganisatie": BRON, "registratiedatum": nu, "kanaal": "", "voorkeurskanaal": "", "voorkeurstaal": "",
         "tekst": "", "onderwerpLinks": [], "initiatiefnemer": "", "medewerker": "https://m.example.com",
         "medewerkerIdentificatie": None}
    with engine.begin() as conn:
        conn.execute(sa.insert(contactmoment), [{"uuid": uuid.uuid4(), "aangemaakt": nu, **naar_kolommen(g, None)}
                                                for _ in range(101)])
    eerste = cm.get("/contactmomenten?kanaal=").json()
    assert eerste["count"] == 101 and len(eerste["results"]) == 100 and eerste["previous"] is None
    assert eerste["next"] == f"{cm.root}/contactmomenten?kanaal=&page=2"
    tweede = cm.get(eerste["next"]).json()
    assert len(tweede["results"]) == 1 and tweede["next"] is None
    assert tweede["previous"] == f"{cm.root}/contactmomenten?kanaal="
    for page in ("0", "3", "abc", "-1"):
        r = cm.get(f"/contactmomenten?page={page}")
        assert r.status_code == 404 and r.json()["detail"] == "Ongeldige pagina.", page
    assert cm.get("/contactmomenten?page=1&kanaal=niets").json() == {"count": 0, "next": None, "previous": None,
                                                                    "results": []}
